"""Core score helpers: golden values on small hand-made scores."""

import subprocess
import sys

import numpy as np
from symusic import Score

from tunesmith.core.constants import pitch_from_name, pitch_name, program_group
from tunesmith.core.score import (
    bar_line_after,
    bar_starts,
    cut_at,
    last_bars,
    make_track,
    new_score,
    note_table,
    quantize,
    scores_have_same_notes,
    transpose,
    trim,
    with_meter,
)


def _score():
    s = new_score(tpq=480, time_signature=(3, 4))
    s.tracks.append(make_track([60, 64, 67], [0, 470, 965], [470, 490, 100], program=3))
    s.tracks.append(make_track([36], [0], [480], is_drum=True))
    return s


def test_quantize_snaps_to_sixteenths_and_keeps_one_step():
    q = quantize(_score(), steps_per_quarter=4)
    table = note_table(q)
    pitched = ~table["is_drum"]
    assert table["start"][pitched].tolist() == [0, 480, 960]
    assert table["duration"][pitched].tolist() == [480, 480, 120]  # 100 ticks round to one 16th


def test_transpose_leaves_drums_and_input_alone():
    s = _score()
    t = transpose(s, 2)
    assert sorted(note_table(t)["pitch"].tolist()) == [36, 62, 66, 69]
    assert sorted(note_table(s)["pitch"].tolist()) == [36, 60, 64, 67]


def test_bar_starts_follow_time_signature():
    assert bar_starts(_score(), end_tick=4000).tolist() == [0, 1440, 2880]


def test_trim_shifts_and_cuts():
    t = trim(_score(), 470, 1000)
    table = note_table(t)
    assert table["start"].tolist() == [0, 495]
    assert table["duration"].tolist() == [490, 35]


def test_same_notes_across_resolutions():
    s = _score()
    assert scores_have_same_notes(s, s.resample(960, min_dur=1))
    assert not scores_have_same_notes(s, transpose(s, 1))


def test_pitch_names_round_trip():
    assert pitch_name(60) == "C4" and pitch_name(63) == "D#4" and pitch_name(0) == "C-1"
    assert all(pitch_from_name(pitch_name(p)) == p for p in range(128))
    assert program_group(33, False) == "bass" and program_group(0, True) == "drums"


def test_help_is_fast_and_imports_no_torch():
    code = "import sys; import tunesmith.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert np.isfinite(1.0)


def _waltz_in_bars(n_bars: int) -> Score:
    """One quarter note on each beat of `n_bars` bars of 3/4 (tpq 480), pitch = 60 + bar index."""
    score = new_score(tpq=480, time_signature=(3, 4))
    starts = np.arange(3 * n_bars) * 480
    score.tracks.append(make_track(60 + starts // 1440, starts, np.full(len(starts), 480)))
    return score


def test_last_bars_keeps_the_last_bars_from_tick_0_with_their_meter():
    tail = last_bars(_waltz_in_bars(5), 2)
    table = note_table(tail)
    assert table["start"].min() == 0 and tail.end() == 2 * 1440
    assert set(table["pitch"].tolist()) == {63, 64}
    assert [(ts.time, ts.numerator) for ts in tail.time_signatures] == [(0, 3)]
    assert last_bars(_waltz_in_bars(2), 8).note_num() == 6  # fewer bars than asked: all of it


def test_bar_line_after_counts_in_the_scores_meter_and_the_primer_bar_belongs_to_the_primer():
    waltz = _waltz_in_bars(1)
    assert bar_line_after(waltz, 2, 0) == 2 * 1440
    assert bar_line_after(waltz, 2, 1440) == 3 * 1440  # ends on a bar line: the next bar is new
    assert bar_line_after(waltz, 2, 1000) == 3 * 1440  # ends inside bar 1: it belongs to the primer


def test_cut_at_gives_exactly_the_length_even_when_the_piece_ends_in_silence():
    waltz = _waltz_in_bars(3)
    assert cut_at(waltz, 1700).end() == 1700 and cut_at(waltz, 1700).note_num() == 4
    short = cut_at(_waltz_in_bars(1), 5000)
    assert short.end() == 5000 and short.note_num() == 3


def test_with_meter_copies_tempo_and_time_signature():
    plain = Score(480)
    plain.tracks.append(make_track([60], [0], [480]))
    stamped = with_meter(plain, _waltz_in_bars(1))
    assert [(ts.numerator, ts.denominator) for ts in stamped.time_signatures] == [(3, 4)]
    assert len(plain.time_signatures) == 0  # the argument is not changed
