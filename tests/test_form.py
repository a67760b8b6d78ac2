"""Endings (issue 11, item 2): a cadence on the tonic is told apart from a piece cut off mid-phrase."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from symusic import Score

from tunesmith.core.score import bars_after, make_track, new_score
from tunesmith.evaluation.form import ending_of, ending_rates

BACH40 = Path(__file__).parent / "fixtures" / "bach40"


def chords(*sonorities: tuple[int, ...], beats: int = 2) -> Score:
    """Block chords, one per `beats` quarters, in 4/4."""
    score = new_score()
    step = beats * score.ticks_per_quarter
    pitch, start = [], []
    for i, chord in enumerate(sonorities):
        pitch += list(chord)
        start += [i * step] * len(chord)
    score.tracks.append(make_track(pitch, start, [step] * len(pitch)))
    return score


C, F, G7, AM = (48, 64, 67, 72), (53, 65, 69, 72), (43, 65, 67, 71), (45, 64, 69, 72)


def test_an_authentic_cadence_passes_every_test():
    ending = ending_of(chords(C, F, G7, C, F, G7, C))
    assert ending.tonic_bass and ending.tonic_chord and ending.held and ending.cadence


def test_ending_on_the_dominant_or_a_short_stab_fails():
    assert not ending_of(chords(C, F, C, F, C, G7)).cadence  # half cadence
    assert ending_of(chords(C, F, G7, AM, C)).cadence  # deceptive cadence, then home
    stab = chords(C, F, G7, C, F, G7, C, beats=1)
    for note in stab.tracks[0].notes[-4:]:  # the final C chord as a 16th-note stab
        note.duration = stab.ticks_per_quarter // 4
    assert not ending_of(stab).held


def test_inverted_final_chord_has_no_tonic_bass():
    ending = ending_of(chords(C, F, G7, C, F, G7, (52, 60, 67, 72)))  # C major over E
    assert ending.tonic_chord and not ending.tonic_bass


def test_bach_endings_beat_the_same_chorales_cut_mid_phrase():
    chorales = [Score.from_file(str(f), format="midi") for f in sorted(BACH40.glob("*.mid"))]
    whole = ending_rates(chorales)
    cut = ending_rates([bars_after(s, 5) for s in chorales])  # 5 bars: mostly mid-phrase
    assert whole["cadence"] > 0.6 and whole["held"] > 0.9
    assert whole["cadence"] - cut["cadence"] > 0.2


def test_a_lone_tonic_or_bare_octave_after_four_voices_is_not_a_tonic_chord():
    assert not ending_of(chords(C, F, G7, C, F, G7, (48,))).tonic_chord
    assert not ending_of(chords(C, F, G7, C, F, G7, (48, 60))).tonic_chord
    assert ending_of(chords(C, F, G7, C, F, G7, (48, 55, 64))).tonic_chord  # three voices are a chord
    melody = chords((60,), (62,), (64,), (67,), (60,))  # one voice throughout: its last note may close it
    assert ending_of(melody).cadence


def test_most_sounding_counts_overlaps_not_notes_that_meet():
    from tunesmith.evaluation.form import most_sounding

    assert most_sounding(np.array([0, 10, 10]), np.array([10, 20, 15])) == 2
    assert most_sounding(np.array([0, 0, 0, 5]), np.array([8, 8, 8, 9])) == 4
    assert most_sounding(np.array([], int), np.array([], int)) == 0


def test_empty_and_drum_only_pieces_have_no_ending():
    drums = new_score()
    drums.tracks.append(make_track([36, 38], [0, 480], [240, 240], is_drum=True))
    assert ending_of(new_score()) is None and ending_of(drums) is None
    assert all(v != v for v in ending_rates([new_score()]).values())  # NaN for no measurable piece
