"""`grid` encodes from note arrays in a dozen numpy calls (`GridRepresentation.encode_notes`): the ids
must equal, bit for bit, those of the skyline path it replaced (roll semantics, then the skyline,
then the start rules), kept here as the reference on real pieces and random scores."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from symusic import Score

from conftest import FIXTURES, real_midi_files
from tunesmith.core.errors import SkipFile
from tunesmith.core.score import make_track, note_table, transpose
from tunesmith.io.midi import Limits, parse_bytes
from tunesmith.representations import _melody
from tunesmith.representations.grid import HOLD_ID, PITCH0_ID, REST_ID, GridConfig, GridRepresentation


def parse_file(path):
    return parse_bytes(path.read_bytes(), Limits())


def reference_encode(rep: GridRepresentation, score: Score) -> np.ndarray:
    """The encoding before `encode_notes`: `melody_steps` (resolve_overlaps + skyline), then the rules."""
    top, starts = rep.melody_steps(score)
    rest_starts = (top == _melody.REST) & (np.r_[0, top[:-1]] != _melody.REST)
    ids = np.full(len(top), HOLD_ID, np.int64)
    ids[starts] = PITCH0_ID + top[starts]
    ids[rest_starts] = REST_ID
    return ids


def assert_same(rep: GridRepresentation, score: Score) -> None:
    expected = reference_encode(rep, score)
    actual = rep.encode(score)
    assert actual.dtype == np.int64 and np.array_equal(actual, expected)


REAL = [*sorted((FIXTURES / "bach40").glob("*.mid"))[:12], *real_midi_files()]


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_real_pieces_encode_as_before(path):
    try:
        score = parse_file(path)
    except SkipFile:
        pytest.skip("a fixture the ingest checks refuse")
    for steps in (4, 3, 12):
        rep = GridRepresentation(GridConfig(steps_per_quarter=steps))
        assert_same(rep, score)
    rep = GridRepresentation()
    assert_same(rep, transpose(score, 2))


def test_from_cache_arrays_with_shift_equals_transposed_score():
    """The streaming path: the arrays of a piece and a shift give the transposed Score's ids."""
    score = parse_file(sorted((FIXTURES / "bach40").glob("*.mid"))[0])
    table, rep = note_table(score), GridRepresentation()
    order = np.random.default_rng(0).permutation(len(table["pitch"]))  # any note order
    for shift in (-3, 0, 5):
        ids = rep.encode_notes(table["pitch"][order].astype(np.uint8), table["start"][order].astype(np.int32),
                               table["duration"][order].astype(np.int32), table["is_drum"][order],
                               score.ticks_per_quarter, shift)
        assert np.array_equal(ids, reference_encode(rep, transpose(score, shift)))


notes = st.lists(st.tuples(st.integers(30, 90), st.integers(-20, 400), st.integers(0, 200), st.booleans(),
                           st.integers(0, 2)), max_size=60)


@given(notes=notes, tpq=st.sampled_from([96, 480, 7, 1]), steps=st.sampled_from([4, 2, 3]))
def test_random_scores_encode_as_before(notes, tpq, steps):
    """Overlapping and re-struck notes of one pitch, chords, drums, negative starts, zero durations."""
    score = Score(tpq)
    for k in range(3):
        mine = [n for n in notes if n[4] == k]
        score.tracks.append(make_track([n[0] for n in mine], [n[1] for n in mine], [n[2] for n in mine],
                                       64, is_drum=k == 2 and any(n[3] for n in mine)))
    rep = GridRepresentation(GridConfig(steps_per_quarter=steps))
    assert_same(rep, score)
    table = note_table(score)
    notes = rep.note_steps(table["pitch"], table["start"], table["duration"], table["is_drum"], tpq)
    full, n = rep.encode(score), notes[3]
    for first in range(0, n + 1, max(1, n // 7)):
        for stop in (first, min(n, first + 5), n):
            assert np.array_equal(rep.step_ids(*notes, first, stop), full[first:stop])


def test_too_long_is_refused_with_the_same_reason():
    score = Score(1)
    score.tracks.append(make_track([60], [0], [300_000], 64))
    rep = GridRepresentation()
    with pytest.raises(SkipFile, match="more than the limit"):
        rep.encode(score)
    with pytest.raises(SkipFile, match="more than the limit"):
        reference_encode(rep, score)


def test_any_window_of_steps_equals_the_slice_of_the_whole_encoding():
    """`step_ids` paints only the notes a window holds: every window of long real pieces (chords,
    overlaps, re-strikes) and of a random score must equal the slice of the full ids."""
    rep, rng = GridRepresentation(), np.random.default_rng(0)
    pieces = [parse_file(p) for p in real_midi_files() if "Maestro" in p.name or "multitrack" in str(p)][:6]
    assert pieces
    for score in pieces:
        table = note_table(score)
        notes = rep.note_steps(table["pitch"], table["start"], table["duration"], table["is_drum"],
                               score.ticks_per_quarter)
        full = rep.step_ids(*notes, 0, notes[3])
        assert np.array_equal(full, reference_encode(rep, score))
        n = notes[3]
        for first in [0, 1, 2, n - 1, n, *rng.integers(0, n, 40).tolist()]:
            for stop in {first, min(n, first + 1), min(n, first + 65), n}:
                if 0 <= first <= stop <= n:
                    assert np.array_equal(rep.step_ids(*notes, first, stop), full[first:stop]), (first, stop)
