"""Core score helpers: golden values on small hand-made scores."""

import subprocess
import sys

import numpy as np

from tunesmith.core.constants import pitch_from_name, pitch_name, program_group
from tunesmith.core.score import (
    bar_starts,
    make_track,
    new_score,
    note_table,
    quantize,
    scores_have_same_notes,
    transpose,
    trim,
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
