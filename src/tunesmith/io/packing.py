"""A parsed score as one packed piece: the bytes of its cache arrays in one buffer, built in the parser
worker with one numpy conversion per track, and checked on the arrays that conversion gives.

The packed form (`pack_score`) is (blob, counts, tpq, track names): `blob` holds the arrays of
`cache.PIECE_DTYPES` back to back, in that order, native byte order and unpadded; `counts` is the
length of each `cache.GROUPS` group (notes, tracks, tempos, meters). Notes are grouped by track, in
symusic's order within a track. The shard writer (`cache_writer`) copies the blob's slices into shards.
"""

from __future__ import annotations

from array import array

import numpy as np

from tunesmith.io.cache import GROUPS
from tunesmith.io.checks import check_piece

# symusic's field names for the note group's arrays, in GROUPS["notes"] order.
_NOTE_FIELDS = ("pitch", "time", "duration", "velocity")
_NOTE_SIZES = tuple(np.dtype(dtype).itemsize for dtype in GROUPS["notes"].values())
_GROUP_BYTES = tuple(sum(np.dtype(dtype).itemsize for dtype in group.values()) for group in GROUPS.values())
_MAP_NAMES = (*GROUPS["tempos"], *GROUPS["ts"])
_MAP_SIZES = tuple(np.dtype(dtype).itemsize for group in ("tempos", "ts") for dtype in GROUPS[group].values())


def pack_score(score) -> tuple[bytes, tuple[int, ...], int, list[str]]:
    """One score as (raw bytes of its arrays in PIECE_DTYPES order, the length of each GROUPS group,
    tpq, track names): one buffer crosses the process boundary, built with a single copy."""
    return score_columns(score)["_packed"]


def pack_checked(score, limits, ring=None) -> tuple:
    """`pack_score`, after every check of `checks.check_piece` on the same arrays (SkipFile). With a
    `ring.RingWriter` that has room, the blob is packed into the ring and given as its `RingRef`."""
    columns = score_columns(score, ring)
    check_piece(columns, limits)
    return columns["_packed"]


def score_columns(score, ring=None) -> dict:
    """What `checks.check_piece` reads of one score, taken from its packed piece: 'start' and 'duration'
    (int32 ticks, views of the blob), the tempo and meter maps (symusic's own arrays: ticks, µs per
    quarter), 'tpq' and 'track_names'; '_packed' holds the `pack_score` result itself, its blob packed
    into `ring` (a `ring.RingWriter`) and given as a `RingRef` when the ring has room."""
    tracks = list(score.tracks)
    per_track = [track.notes.numpy() for track in tracks]
    tempos, sigs = score.tempos.numpy(), score.time_signatures.numpy()
    maps = [tempos["time"], tempos["mspq"], sigs["time"], sigs["numerator"], sigs["denominator"]]
    if not _WIDTHS_CHECKED:
        _check_widths(per_track[:1], maps)
    counts = [len(n["time"]) for n in per_track]
    parts = [n[field] for field in _NOTE_FIELDS for n in per_track]  # int8 pitch, velocity: 0-127 as u8
    parts += [bytes([t.program for t in tracks]), bytes([t.is_drum for t in tracks]), array("q", counts), *maps]
    lengths = (sum(counts), len(tracks), len(maps[0]), len(maps[2]))
    n_notes, ref = lengths[0], None
    if ring is not None:
        ref = ring.put(parts, sum(n * size for n, size in zip(lengths, _GROUP_BYTES, strict=True)))
    buffer, at = ring.buffer(ref) if ref is not None else (b"".join(parts), 0)
    packed = (ref or buffer, lengths, int(score.ticks_per_quarter), [t.name for t in tracks])
    return {"start": np.frombuffer(buffer, np.int32, n_notes, at + n_notes),
            "duration": np.frombuffer(buffer, np.int32, n_notes, at + 5 * n_notes),
            **dict(zip(_MAP_NAMES, maps, strict=True)), "tpq": packed[2], "track_names": packed[3],
            "_packed": packed}


def _check_widths(notes: list[dict], maps: list[np.ndarray]) -> None:
    """TypeError unless symusic's arrays have the item sizes of the cache's types (their bytes are
    copied as they are); once notes and maps have passed, symusic's types are known for the process."""
    global _WIDTHS_CHECKED
    widths = [a.itemsize for n in notes for a in (n[field] for field in _NOTE_FIELDS)] + [a.itemsize for a in maps]
    if widths != list(_NOTE_SIZES * len(notes) + _MAP_SIZES):
        raise TypeError("symusic's array types changed: tunesmith.io.packing needs updating")
    _WIDTHS_CHECKED = bool(notes)


_WIDTHS_CHECKED = False


def unpack_piece(packed: tuple[bytes, tuple[int, ...], int, list[str]]) -> dict:
    """The arrays of a `pack_score` result (read-only views of its buffer), plus 'tpq' and 'track_names'."""
    blob, counts, tpq, names = packed
    arrays, offset = {}, 0
    for n, group in zip(counts, GROUPS.values(), strict=True):
        for name, dtype in group.items():
            arrays[name] = np.frombuffer(blob, dtype, n, offset)
            offset += n * np.dtype(dtype).itemsize
    return {**arrays, "tpq": tpq, "track_names": names}


def piece_arrays(score) -> dict:
    """The arrays of PIECE_DTYPES for one score, plus 'tpq' and 'track_names' (see `pack_score`)."""
    return unpack_piece(pack_score(score))
