"""The piece checks ingest runs in its parser worker: the list path for short tempo and meter maps gives
the same verdict, message and length as the numpy path, on real files and on random maps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import real_midi_files
from tunesmith.core.errors import SkipFile
from tunesmith.io import checks
from tunesmith.io.cache_writer import piece_arrays
from tunesmith.io.midi import Limits, parse_bytes

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
