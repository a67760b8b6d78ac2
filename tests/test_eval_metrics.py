"""Per-piece metrics: golden values on tiny hand-made scores; agreement with muspy where it has the metric."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tunesmith.core.score import make_track, new_score
from tunesmith.evaluation import metrics as m
from tunesmith.evaluation.rhythm import drum_pattern_consistency, groove_consistency


def _melody():
    """tpq 4 (a tick is a 16th), 4/4. Bar 0: C4 E4 G4 C5 (quarter, 8th, 8th, quarter), beat 3 silent.
    Bar 1: a C major triad for a quarter, then D4 for a 16th at tick 22 (the piece ends at tick 23)."""
    s = new_score(tpq=4)
    s.tracks.append(make_track([60, 64, 67, 72, 60, 64, 67, 62], [0, 4, 6, 8, 16, 16, 16, 22],
                               [4, 2, 2, 4, 4, 4, 4, 1]))
    return s


def test_pitch_metrics_golden():
    s = _melody()
    hist = np.zeros(12)
    hist[[0, 2, 4, 7]] = [3 / 8, 1 / 8, 2 / 8, 2 / 8]  # C x3, D x1, E x2, G x2 of 8 notes
    np.testing.assert_allclose(m.pitch_class_histogram(s), hist)
    # -(3/8 log2 3/8 + 1/8 log2 1/8 + 2 * 1/4 log2 1/4) = 0.530639 + 0.375 + 1
    assert m.pitch_class_entropy(s) == pytest.approx(1.905639, abs=1e-6)
    assert (m.used_pitches(s), m.used_pitch_classes(s), m.note_count(s)) == (5, 4, 8)
    assert m.pitch_range(s) == 12
    assert m.scale_consistency(s) == 1.0  # all in C major


def test_per_bar_metrics_golden():
    s = _melody()
    assert m.used_pitches_per_bar(s) == 4.0  # {60,64,67,72} and {60,62,64,67}
    assert m.used_pitch_classes_per_bar(s) == 3.5  # {C,E,G} and {C,D,E,G}
    assert m.empty_bar_rate(s) == 0.0
    assert m.empty_beat_rate(s) == pytest.approx(1 / 6)  # 6 beats up to tick 23; [12, 16) is silent


def test_melodic_and_rhythm_metrics_golden():
    s = _melody()
    # skyline 60 64 67 72 67 62 (top of the triad): |steps| 4 3 5 5 5
    assert m.average_pitch_shift(s) == pytest.approx(22 / 5)
    # distinct onsets 0 4 6 8 16 22 ticks: intervals 4 2 2 8 6 -> 22/5 ticks = 1.1 quarters
    assert m.average_ioi(s) == pytest.approx(1.1)
    # sounding pitches per tick: 1 over [0, 12), 3 over [16, 20), 1 over [22, 23); 25 note-ticks / 17 ticks
    assert m.polyphony(s) == pytest.approx(25 / 17)
    lengths = np.zeros(12)
    lengths[[2, 3, 4]] = [5 / 8, 2 / 8, 1 / 8]  # quarters, 8ths, one 16th
    np.testing.assert_allclose(m.note_length_histogram(s), lengths)
    pctm = np.zeros((12, 12))
    pctm[[0, 4, 7, 0, 7], [4, 7, 0, 7, 2]] = 1 / 5  # C-E, E-G, G-C, C-G, G-D
    np.testing.assert_allclose(m.pitch_class_transition_matrix(s), pctm)
    # onsets per bar on the 16th grid: {0,4,6,8} and {0,6}; 2 differ out of 16 positions
    assert groove_consistency(s, steps_per_quarter=4) == pytest.approx(1 - 2 / 16)


def test_undefined_metrics_are_nan():
    empty = new_score()
    for name, fn in m.METRICS.items():
        value = np.asarray(fn(empty), float)
        assert np.isnan(value).all() or name in ("used_pitches", "used_pitch_classes", "note_count"), name
    single = _melody()
    assert math.isnan(m.tonal_distance(single))  # one track
    assert math.isnan(drum_pattern_consistency(single))  # no drums


def test_empty_bar_rate_and_time_signature():
    s = new_score(tpq=4, time_signature=(3, 4))  # 12-tick bars
    s.tracks.append(make_track([60, 62], [0, 24], [2, 15]))  # bar 0, then bars 2 and 3 (ends at 39)
    assert m.empty_bar_rate(s) == pytest.approx(1 / 4)
    assert m.used_pitches_per_bar(s) == pytest.approx(3 / 4)  # 1, 0, 1, 1 pitches


def test_qualified_note_rate_counts_32nd_notes_and_longer():
    s = new_score(tpq=480)
    s.tracks.append(make_track([60, 62, 64, 65], [0, 480, 960, 1440], [480, 60, 30, 240]))
    assert m.qualified_note_rate(s) == pytest.approx(3 / 4)  # 30 ticks is a 64th note


def test_drum_pattern_consistency_golden():
    s = new_score(tpq=12)
    s.tracks.append(make_track([36, 38, 42, 36], [0, 3, 4, 6], [1, 1, 1, 1], is_drum=True))
    # duple grid {0,3,6,9}: 3 of 4 onsets; triple grid {0,4,8}: 2 of 4
    assert drum_pattern_consistency(s) == pytest.approx(0.75)


def test_tonal_distance_golden():
    s = new_score(tpq=4)
    s.tracks.append(make_track([60], [0], [16]))  # C for a bar
    s.tracks.append(make_track([43], [0], [16]))  # G for the same bar
    # centroids (Harte 2006) of C: (0, 1, 0, 1, 0, 0.5); of G: (1/2, cos(pi/6), 1, 0, sin(2pi/3)/2, -1/4)
    # squared difference: 0.25 + 0.01795 + 1 + 1 + 0.1875 + 0.5625 = 3.01795
    assert m.tonal_distance(s) == pytest.approx(math.sqrt(3.0179492), abs=1e-6)
    same = new_score(tpq=4)
    same.tracks.append(make_track([60, 64], [0, 0], [16, 16]))
    same.tracks.append(make_track([48, 52], [0, 0], [16, 16]))
    same.tracks.append(make_track([], [], []))  # an empty track is not a part
    assert m.tonal_distance(same) == pytest.approx(0.0, abs=1e-12)


def test_metrics_do_not_touch_the_score():
    s = _melody()
    before = s.tracks[0].notes.numpy()["time"].copy()
    m.compute_metrics(s)
    np.testing.assert_array_equal(s.tracks[0].notes.numpy()["time"], before)


# --- agreement with muspy on random scores -------------------------------------------------------------

muspy = pytest.importorskip("muspy")
TPQ = 12  # a tick is a 16th triplet: muspy's drum patterns (16ths and 8th triplets) both fit


def _to_muspy(score):
    tracks = []
    for track in score.tracks:
        notes = [muspy.Note(time=n.time, pitch=n.pitch, duration=n.duration, velocity=n.velocity)
                 for n in track.notes]
        tracks.append(muspy.Track(program=track.program, is_drum=track.is_drum, notes=notes))
    return muspy.Music(resolution=TPQ, tracks=tracks)


@st.composite
def scores(draw):
    """1-3 tracks (maybe a drum track) of notes that never end on a beat line, where muspy counts
    one beat (and one bar) more than we do; elsewhere the definitions are the same."""
    score = new_score(tpq=TPQ)
    for index in range(draw(st.integers(1, 3))):
        n = draw(st.integers(1, 12))
        start = draw(st.lists(st.integers(0, 8 * TPQ), min_size=n, max_size=n))
        dur = draw(st.lists(st.integers(1, 3 * TPQ), min_size=n, max_size=n))
        dur = [d + 1 if (s + d) % TPQ == 0 else d for s, d in zip(start, dur, strict=True)]
        pitch = draw(st.lists(st.integers(30, 90), min_size=n, max_size=n))
        score.tracks.append(make_track(pitch, start, dur, is_drum=index == 2 and draw(st.booleans())))
    return score


@settings(max_examples=60, deadline=None)
@given(scores())
def test_agrees_with_muspy(score):
    music = _to_muspy(score)
    pairs = [
        (m.pitch_class_entropy(score), muspy.pitch_class_entropy(music)),
        (m.used_pitches(score), muspy.n_pitches_used(music)),
        (m.used_pitch_classes(score), muspy.n_pitch_classes_used(music)),
        (m.empty_beat_rate(score), muspy.empty_beat_rate(music)),
        (m.polyphony(score), muspy.polyphony(music)),
        (m.scale_consistency(score), muspy.scale_consistency(music)),
        (groove_consistency(score, steps_per_quarter=TPQ), muspy.groove_consistency(music, 4 * TPQ)),
        (drum_pattern_consistency(score), muspy.drum_pattern_consistency(music)),
    ]
    if m.note_count(score):  # muspy says 0 for a piece without pitched notes; we say NaN
        pairs.append((m.pitch_range(score), muspy.pitch_range(music)))
    for ours, theirs in pairs:
        assert ours == pytest.approx(theirs, nan_ok=True, abs=1e-9)
