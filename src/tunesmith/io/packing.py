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
    counts, notes = note_columns(tracks)
    tempos, sigs = score.tempos.numpy(), score.time_signatures.numpy()
    maps = [tempos["time"], tempos["mspq"], sigs["time"], sigs["numerator"], sigs["denominator"]]
    if not _MAP_WIDTHS_CHECKED:
        _check_map_widths(maps)
    parts = [*notes, bytes([t.program for t in tracks]), bytes([t.is_drum for t in tracks]), array("q", counts),
             *maps]
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


# symusic pickles a track's notes as a little-endian u32 count, then one 12-byte record per note in
# this layout. Reading those bytes is twice as fast as `notes.numpy()` (about 35 of the worker's ~600
# µs per file on the benchmark corpus: one C++ copy per track instead of four arrays and a dict); the
# layout is private to symusic, so each process checks it once against `numpy()` and otherwise uses that.
_NOTE_RECORD = np.dtype([("time", "<i4"), ("duration", "<i4"), ("pitch", "u1"), ("velocity", "u1"),
                         ("_", "V2")])


def note_columns(tracks: list) -> tuple[list[int], list]:
    """(notes per track, buffers holding the GROUPS["notes"] arrays in order: the pitch of every note,
    track after track in symusic's order, then every start, duration and velocity)."""
    global _RECORDS_OK
    if _RECORDS_OK is None:
        _RECORDS_OK = _records_match_numpy(tracks)
    if not _RECORDS_OK:
        per_track = [track.notes.numpy() for track in tracks]
        if per_track and [per_track[0][f].itemsize for f in _NOTE_FIELDS] != list(_NOTE_SIZES):
            raise TypeError("symusic's array types changed: tunesmith.io.packing needs updating")
        return [len(n["time"]) for n in per_track], [n[field] for field in _NOTE_FIELDS for n in per_track]
    states = [track.notes.__getstate__() for track in tracks]
    counts = [(len(state) - 4) // _NOTE_RECORD.itemsize for state in states]
    records = np.frombuffer(b"".join(memoryview(state)[4:] for state in states), _NOTE_RECORD)
    return counts, [np.ascontiguousarray(records[field]) for field in _NOTE_FIELDS]


def _records_match_numpy(tracks: list) -> bool:
    """Whether symusic's pickled note records read with `_NOTE_RECORD` give what `notes.numpy()` gives
    (decided on the first track with notes; undecided, None, while none has any)."""
    for track in tracks:
        state, arrays = track.notes.__getstate__(), track.notes.numpy()
        if not len(arrays["time"]):
            continue
        count = int.from_bytes(state[:4], "little")
        if count != len(arrays["time"]) or len(state) != 4 + count * _NOTE_RECORD.itemsize:
            return False
        records = np.frombuffer(state, _NOTE_RECORD, offset=4)
        return all(np.array_equal(records[f].astype(np.int64), arrays[f].astype(np.int64)) for f in _NOTE_FIELDS)
    return None


def _check_map_widths(maps: list[np.ndarray]) -> None:
    """TypeError unless symusic's tempo and meter arrays have the item sizes of the cache's types (their
    bytes are copied as they are); once they have passed, symusic's types are known for the process."""
    global _MAP_WIDTHS_CHECKED
    if [a.itemsize for a in maps] != list(_MAP_SIZES):
        raise TypeError("symusic's array types changed: tunesmith.io.packing needs updating")
    _MAP_WIDTHS_CHECKED = True


_MAP_WIDTHS_CHECKED = False
_RECORDS_OK: bool | None = None


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
