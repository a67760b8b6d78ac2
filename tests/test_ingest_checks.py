"""The piece checks ingest runs in its parser worker: the list path for short tempo and meter maps gives
the same verdict, message and length as the numpy path, on real files and on random maps; the worker's
packing (`packing.pack_checked`) gives the plain bytes and the verdicts of `check_piece` on them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import real_midi_files
from tunesmith.core.errors import SkipFile
from tunesmith.io import checks
from tunesmith.io.cache import GROUPS, PIECE_DTYPES
from tunesmith.io.midi import Limits, parse_bytes
from tunesmith.io.packing import pack_checked, pack_score, piece_arrays, unpack_piece

LIMITS = Limits(max_ticks=1 << 24, max_seconds=3600.0, max_qpm=2000.0)


def outcome(path, note_end: int, tpq: int, maps: tuple, limits: Limits = LIMITS):
    """('ok', seconds) or ('skip', reason) of one map-checking path."""
    try:
        return "ok", path(note_end, tpq, *maps, limits=limits)
    except SkipFile as reason:
        return "skip", str(reason)


ticks = st.integers(-5, 1 << 25)
maps = st.tuples(
    st.lists(st.tuples(ticks, st.sampled_from([-1, 0, 1, 29_000, 30_000, 500_000, 2**31 - 1])), max_size=12),
    st.lists(st.tuples(ticks, st.sampled_from([0, 1, 3, 4, 7, 255]), st.sampled_from([0, 1, 2, 3, 4, 8, 16, 255])),
             max_size=5),
)


@settings(max_examples=300, deadline=None)
@given(maps, st.integers(0, 1 << 25), st.sampled_from([1, 96, 480, 32767]))
def test_short_maps_are_checked_as_the_numpy_path_checks_them(events, note_end, tpq):
    tempos, meters = events
    arrays = (np.array([t for t, _ in tempos], np.int32), np.array([m for _, m in tempos], np.int32),
              np.array([t for t, _, _ in meters], np.int32), np.array([n for _, n, _ in meters], np.uint8),
              np.array([d for _, _, d in meters], np.uint8))
    short = outcome(checks._check_short_maps, note_end, tpq, arrays)
    assert short == outcome(checks._check_maps, note_end, tpq, arrays)


@pytest.mark.parametrize("path", real_midi_files()[:40], ids=lambda p: p.name)
def test_real_files_get_the_same_verdict_on_both_paths(path, monkeypatch):
    try:
        piece = piece_arrays(parse_bytes(path.read_bytes(), Limits(), checked=False))
    except SkipFile:
        pytest.skip("not parsed")
    verdicts = []
    for short in (10**9, -1):  # every map short, then every map long
        monkeypatch.setattr(checks, "SHORT_MAP", short)
        try:
            checks.check_piece(piece, Limits())
            verdicts.append(None)
        except SkipFile as reason:
            verdicts.append(str(reason))
    assert verdicts[0] == verdicts[1]


def reference_pack(score) -> tuple:
    """The packed piece built the plain way: each PIECE_DTYPES array converted and concatenated."""
    tracks = list(score.tracks)
    notes = [track.notes.numpy() for track in tracks]
    tempos, sigs = score.tempos.numpy(), score.time_signatures.numpy()
    sources = {"pitch": [n["pitch"] for n in notes], "start": [n["time"] for n in notes],
               "duration": [n["duration"] for n in notes], "velocity": [n["velocity"] for n in notes],
               "track_program": [[t.program for t in tracks]], "track_is_drum": [[t.is_drum for t in tracks]],
               "track_notes": [[len(n["time"]) for n in notes]], "tempo_time": [tempos["time"]],
               "tempo_mspq": [tempos["mspq"]], "ts_time": [sigs["time"]], "ts_numerator": [sigs["numerator"]],
               "ts_denominator": [sigs["denominator"]]}
    arrays = {name: np.concatenate([np.asarray(a).astype(dtype) for a in sources[name]] or [np.empty(0, dtype)])
              for name, dtype in PIECE_DTYPES.items()}
    counts = tuple(len(arrays[next(iter(group))]) for group in GROUPS.values())
    return b"".join(a.tobytes() for a in arrays.values()), counts, score.ticks_per_quarter, [t.name for t in tracks]


def mutated(data: bytes, seed: int) -> bytes:
    """`data` with a few bytes after the header changed (a corrupted copy that may still parse)."""
    rng = np.random.default_rng(seed)
    out = bytearray(data)
    for at in rng.integers(14, len(out), 3):
        out[at] = int(rng.integers(0, 256))
    return bytes(out)


TIGHT = [Limits(), Limits(max_notes_per_tick=2), Limits(max_seconds=30.0), Limits(max_ticks=4000),
         Limits(max_qpm=90.0)]


@pytest.mark.parametrize("path", real_midi_files()[:40], ids=lambda p: p.name)
def test_packing_in_the_worker_gives_the_plain_bytes_and_the_same_verdicts(path):
    """`pack_checked` (checks on the arrays it is packing) against the plain packing and `check_piece` on
    the unpacked blob: the same bytes, and the same verdict and message under tight limits, on a real
    file and on corrupted copies of it."""
    for data in [path.read_bytes(), *(mutated(path.read_bytes(), seed) for seed in range(3))]:
        try:
            score = parse_bytes(data, Limits(), checked=False)
        except SkipFile:
            continue
        packed = pack_score(score)
        assert packed == reference_pack(score)
        for limits in TIGHT:
            expected = verdict(checks.check_piece, unpack_piece(packed), limits)
            assert verdict(pack_checked, score, limits) == expected


def verdict(check, *args) -> str | None:
    try:
        check(*args)
    except SkipFile as reason:
        return str(reason)
    return None


@pytest.mark.parametrize("records", [True, False], ids=["pickled-records", "numpy"])
def test_both_ways_of_reading_symusic_notes_pack_the_plain_bytes(records, monkeypatch):
    """Notes are read from symusic's pickled records where their layout holds what `numpy()` gives (the
    installed symusic: checked below), else through `numpy()`: both pack the reference bytes."""
    from tunesmith.io import packing

    assert packing.records_readable() is True
    monkeypatch.setattr(packing, "_READABLE", records)
    for path in real_midi_files()[:12]:
        try:
            score = parse_bytes(path.read_bytes(), Limits(), checked=False)
        except SkipFile:
            continue
        assert pack_score(score) == reference_pack(score)


def test_a_changed_record_layout_is_noticed(monkeypatch):
    """A layout that does not hold what `numpy()` gives (here: start and duration swapped) sends packing
    back to it."""
    from tunesmith.io import packing

    swapped = np.dtype([("duration", "<i4"), ("time", "<i4"), ("pitch", "u1"), ("velocity", "u1"), ("_", "V2")])
    monkeypatch.setattr(packing, "NOTE_RECORD", swapped)
    monkeypatch.setattr(packing, "_READABLE", None)
    assert packing.records_readable() is False
    score = parse_bytes(real_midi_files()[0].read_bytes(), Limits(), checked=False)
    assert pack_score(score) == reference_pack(score)
