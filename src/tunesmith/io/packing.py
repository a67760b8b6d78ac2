"""A parsed score as one packed piece: the bytes of its cache arrays in one buffer, built in the parser
worker from symusic's note records, and checked on the arrays packed.

The packed form (`pack_score`) is (blob, counts, tpq, track names): `blob` holds the arrays of
`cache.PIECE_DTYPES` back to back, in that order, native byte order and unpadded; `counts` is the
length of each `cache.GROUPS` group (notes, tracks, tempos, meters). Notes are grouped by track, in
symusic's order within a track. The shard writer (`cache_writer`) copies the blob's slices into shards.
"""

from __future__ import annotations

from array import array

import numpy as np

from tunesmith.io.cache import GROUPS, PIECE_DTYPES
from tunesmith.io.checks import check_piece

_NOTE_FIELDS = ("pitch", "time", "duration", "velocity")  # symusic's names, in GROUPS["notes"] order
_GROUP_BYTES = tuple(sum(np.dtype(dtype).itemsize for dtype in group.values()) for group in GROUPS.values())


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
    counts, notes = note_columns([track.notes for track in tracks])
    tempos, sigs = score.tempos.numpy(), score.time_signatures.numpy()  # a few events: numpy() is as fast
    maps = [tempos["time"], tempos["mspq"], sigs["time"], sigs["numerator"], sigs["denominator"]]
    if not _MAP_TYPES_CHECKED:
        _check_map_types(maps)
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


_MAP_NAMES = (*GROUPS["tempos"], *GROUPS["ts"])


def _check_map_types(maps: list[np.ndarray]) -> None:
    """TypeError unless symusic's tempo and meter arrays have the cache's types (their bytes are copied as
    they are); once they have passed, symusic's types are known for the process."""
    global _MAP_TYPES_CHECKED
    if [a.dtype for a in maps] != [np.dtype(PIECE_DTYPES[name]) for name in _MAP_NAMES]:
        raise TypeError("symusic's array types changed: tunesmith.io.packing needs updating")
    _MAP_TYPES_CHECKED = True


_MAP_TYPES_CHECKED = False

# symusic pickles a note list (`__getstate__`) as a little-endian u32 count, then one 12-byte record per
# note in this layout. Reading those bytes is about twice as fast as `notes.numpy()` (one C++ copy per
# track instead of four arrays and a dict: ~35 of a parser worker's ~600 µs per file on the benchmark
# corpus). The layout is private to symusic, so `records_readable` checks it once per process against
# `numpy()` on notes of known values; where it differs, `numpy()` is used.
NOTE_RECORD = np.dtype([("time", "<i4"), ("duration", "<i4"), ("pitch", "u1"), ("velocity", "u1"), ("_", "V2")])


def note_columns(note_lists: list) -> tuple[list[int], list[np.ndarray]]:
    """(notes per list, the GROUPS["notes"] arrays of every note, list after list, in symusic's order)
    of symusic note lists (one per track)."""
    if records_readable():
        states = [notes.__getstate__() for notes in note_lists]
        counts = [(len(state) - 4) // NOTE_RECORD.itemsize for state in states]
        records = np.frombuffer(b"".join(memoryview(state)[4:] for state in states), NOTE_RECORD)
        return counts, [np.ascontiguousarray(records[field]) for field in _NOTE_FIELDS]  # the cache's types
    arrays = [notes.numpy() for notes in note_lists]
    columns = [np.concatenate([a[field] for a in arrays] or [np.zeros(0)]) for field in _NOTE_FIELDS]
    return [len(a["time"]) for a in arrays], [c.astype(dtype) for c, dtype in zip(columns, GROUPS["notes"].values(),
                                                                                    strict=True)]


def records_readable() -> bool:
    """Whether symusic's pickled note records, read with NOTE_RECORD, hold what `numpy()` gives: tried once
    per process on notes of known values."""
    global _READABLE
    if _READABLE is None:
        from symusic import Note

        ticks, small = np.array([0, 7, 2**31 - 1], np.int32), np.array([1, 64, 127], np.int8)
        notes = Note.from_numpy(ticks, ticks[::-1].copy(), small, small[::-1].copy())
        state, arrays = notes.__getstate__(), notes.numpy()
        _READABLE = (int.from_bytes(state[:4], "little") == len(notes) == 3
                     and len(state) == 4 + 3 * NOTE_RECORD.itemsize and set(arrays) == set(_NOTE_FIELDS)
                     and all(np.array_equal(np.frombuffer(state, NOTE_RECORD, offset=4)[f].astype(np.int64),
                                            arrays[f].astype(np.int64)) for f in _NOTE_FIELDS))
    return _READABLE


_READABLE: bool | None = None


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
