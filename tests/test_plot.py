"""Piano-roll pictures: size, content, axes (pitch names, bars), drums, and the CLI's answers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from symusic import Score

from tunesmith.core.errors import UserError
from tunesmith.core.score import make_track, new_score, trim
from tunesmith.io.plot import _draw_bars, _pitch_axis, plot_midi_file, plot_score

BACH = Path(__file__).parent / "fixtures" / "realmidi" / "tonejs_midi_tests" / "bach__bach_846.mid"
TUNESMITH = Path(sys.executable).parent / "tunesmith"


@pytest.fixture(scope="module")
def bach() -> Score:
    return Score.from_file(str(BACH), format="midi")


def image(path: Path) -> np.ndarray:
    """RGB pixels in [0, 1], shape (height, width, 3)."""
    return imread(str(path))[:, :, :3]


def test_real_piece_png(bach, tmp_path):
    clip = trim(bach, 0, 4 * 1920)  # four bars of the prelude, two hands
    assert plot_score(clip, tmp_path / "clip.png", title="prelude") == tmp_path / "clip.png"
    pixels = image(tmp_path / "clip.png")
    assert pixels.shape == (600, 1000, 3)  # 10 x 6 inches at 100 dpi
    assert pixels.std() > 0.05  # not blank
    # Both hands are drawn in their own tab10 colour (blue and orange), not just grey lines.
    blue = (np.abs(pixels - [0.12, 0.47, 0.71]).max(axis=2) < 0.08).sum()
    orange = (np.abs(pixels - [1.0, 0.50, 0.05]).max(axis=2) < 0.08).sum()
    assert blue > 200 and orange > 200


def test_whole_piece_is_wider(bach, tmp_path):
    plot_midi_file(BACH, tmp_path / "bach.png")
    height, width, _ = image(tmp_path / "bach.png").shape
    assert height == 600 and 1500 < width <= 2400


def test_drums_get_their_own_lane(tmp_path):
    score = new_score()
    score.tracks.append(make_track([60, 64, 67], [0, 480, 960], [480] * 3, program=0, name="keys"))
    score.tracks.append(make_track([36, 38, 42], [0, 480, 960], [60] * 3, is_drum=True))
    plot_score(score, tmp_path / "band.png")
    assert image(tmp_path / "band.png").shape[0] == 800  # roll 6 in + drum lane 2 in
    drums_only = new_score()
    drums_only.tracks.append(score.tracks[1].copy())
    plot_score(drums_only, tmp_path / "drums.png")
    assert image(tmp_path / "drums.png").shape[0] == 400


def test_pitch_axis_names_every_c_and_fits_the_notes():
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    _pitch_axis(ax, np.array([55, 62, 79]))
    assert [t.get_text() for t in ax.get_yticklabels()] == ["C4", "C5"]
    assert ax.get_ylim() == (52.5, 81.5)
    ax = Figure().subplots()
    _pitch_axis(ax, np.array([62, 69]))  # fewer than two Cs in range: the extremes are named too
    assert [t.get_text() for t in ax.get_yticklabels()] == ["C4", "D4", "A4"]


def test_bar_lines_follow_time_signatures():
    from matplotlib.figure import Figure

    score = new_score(time_signature=(3, 4))
    ax = Figure().subplots()
    _draw_bars(ax, score, np.array([0, 1440, 2880]), 4000)
    assert list(ax.get_xticks()) == [0, 1440, 2880]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3"]
    # three beats per bar (matplotlib drops the minor ticks that fall on bar lines)
    assert list(ax.get_xticks(minor=True)) == [480, 960, 1920, 2400, 3360, 3840]


def test_bad_inputs_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no notes"):
        plot_score(new_score(), tmp_path / "empty.png")
    with pytest.raises(UserError, match="must end in .png"):
        plot_score(new_score(), tmp_path / "roll.svg")


def test_cli_plot(tmp_path, bach):
    midi = tmp_path / "clip.mid"
    trim(bach, 0, 2 * 1920).dump_midi(str(midi))
    done = subprocess.run([str(TUNESMITH), "plot", str(midi), "--out", str(tmp_path / "clip.png")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert image(tmp_path / "clip.png").std() > 0.05


@pytest.mark.parametrize("bad", ["suffix", "not_midi"])
def test_cli_plot_bad_input_exit_code_2(tmp_path, bad):
    midi, out = tmp_path / "in.mid", tmp_path / ("roll.jpg" if bad == "suffix" else "roll.png")
    if bad == "suffix":
        new_score().dump_midi(str(midi))
    else:
        midi.write_bytes(b"MThd but then nothing useful")
    done = subprocess.run([str(TUNESMITH), "plot", str(midi), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("error: ")
    assert not out.exists()
