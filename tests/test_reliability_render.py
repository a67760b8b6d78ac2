"""Plot and render of very long scores stay bounded: the roll becomes an image past MAX_SHAPES notes, bar
lines and beats are thinned, audio stops at the render cap; each says so in one log line."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
import soundfile as sf
from matplotlib.figure import Figure
from symusic import Tempo

from tunesmith.core.score import make_track, new_score
from tunesmith.io import plot
from tunesmith.io.audio import cut_at, render_midi_file, render_score
from tunesmith.io.checks import score_seconds, tick_at_seconds
from tunesmith.io.midi import write_midi

TAB_BLUE = np.array([0.12, 0.47, 0.71])


def long_score(n_notes: int, n_tracks: int = 3, tpq: int = 480):
    """`n_notes` sixteenth notes per track laid end to end (n_notes / 16 bars of 4/4), last track drums."""
    score = new_score(tpq)
    rng = np.random.default_rng(0)
    for k in range(n_tracks):
        start = np.arange(n_notes) * (tpq // 4)
        score.tracks.append(make_track(rng.integers(40, 90, n_notes), start, np.full(n_notes, tpq // 4),
                                       rng.integers(30, 127, n_notes), program=8 * k, is_drum=k == n_tracks - 1))
    return score


def _pixels(png: bytes, tmp_path) -> np.ndarray:
    from matplotlib.image import imread

    (tmp_path / "x.png").write_bytes(png)
    return imread(str(tmp_path / "x.png"))[:, :, :3]


def test_a_very_long_score_plots_in_bounded_time_and_size(tmp_path, caplog):
    score = long_score(100_000)  # 300k notes, 6,250 bars
    started = time.perf_counter()
    with caplog.at_level(logging.INFO, logger="tunesmith.io.plot"):
        png = plot.score_png(score, title="long")
    seconds = time.perf_counter() - started
    assert seconds < 20  # about 2 s here; one shape per note took minutes
    pixels = _pixels(png, tmp_path)
    assert pixels.shape == (800, 2400, 3)
    assert (np.abs(pixels - TAB_BLUE).max(axis=2) < 0.1).sum() > 5000  # the first track is drawn
    [record] = [r for r in caplog.records if r.name == "tunesmith.io.plot"]
    assert "300000 notes drawn as an image of" in record.getMessage()


def test_image_mode_draws_what_shape_mode_draws(tmp_path, monkeypatch):
    score = long_score(64, n_tracks=2)
    shapes = _pixels(plot.score_png(score), tmp_path)
    monkeypatch.setattr(plot, "MAX_SHAPES", 10)
    image = _pixels(plot.score_png(score), tmp_path)
    assert shapes.shape == image.shape
    blue_shapes, blue_image = ((np.abs(p - TAB_BLUE).max(axis=2) < 0.3).sum() for p in (shapes, image))
    assert blue_image > 0.5 * blue_shapes > 0  # the same notes cover about the same area
    dark = [(p.max(axis=2) < 0.5).sum() for p in (shapes, image)]  # drum hits (and text)
    assert dark[1] > 0.5 * dark[0]


def test_paint_fills_the_cells_a_note_sounds_in_with_its_mean_velocity():
    image = np.zeros((3, 4, 4))
    # ticks per column 10: a note on row 1 over ticks [5, 25) covers columns 0-2; two notes share column 3
    plot._paint(image, np.array([1, 2, 2]), np.array([5, 30, 31]), np.array([25, 31, 32]),
                np.array([127, 1, 127]), (1.0, 0.0, 0.0), 10)
    assert (image[1, :3, 0] == 1).all() and image[1, 3, 3] == 0 and image[0].sum() == 0
    assert image[1, 0, 3] == pytest.approx(1.0)
    assert image[2, 3, 3] == pytest.approx(0.25 + 0.75 * 64 / 127)  # mean velocity 64
    assert image[2, :3].sum() == 0


def test_many_bars_get_thinned_lines_and_no_beat_ticks():
    ax = Figure().subplots()
    bars = np.arange(5000) * 1920
    plot._draw_bars(ax, new_score(), bars, 5000 * 1920)
    [lines] = ax.collections
    assert len(lines.get_segments()) <= plot.MAX_BAR_LINES
    assert len(ax.get_xticks()) <= plot.MAX_BAR_LABELS + 1 and len(ax.get_xticks(minor=True)) == 0


def test_tick_at_seconds_inverts_the_tempo_map():
    score = new_score(tpq=480, qpm=120)
    score.tempos.append(Tempo(960, qpm=60))  # 1 s at 120 qpm, then a quarter per second
    score.tracks.append(make_track([60], [0], [4800]))
    assert tick_at_seconds(score, 0.5) == 480 and tick_at_seconds(score, 1.0) == 960
    assert tick_at_seconds(score, 3.0) == 960 + 2 * 480
    for seconds in (0.77, 2.5, 5.9):
        assert score_seconds(cut_at(score, tick_at_seconds(score, seconds))) == pytest.approx(seconds, abs=0.01)


def _legato_song(seconds: int):
    """A note every second, each lasting a second, for `seconds` s (120 qpm: 960 ticks a second)."""
    score = new_score(tpq=480, qpm=120)
    starts = np.arange(seconds) * 960
    score.tracks.append(make_track(60 + np.arange(seconds) % 12, starts, np.full(seconds, 960)))
    return score


@pytest.mark.parametrize("engine", ["builtin", "auto"])
def test_render_stops_at_the_cap_and_says_so(tmp_path, caplog, engine):
    midi = write_midi(_legato_song(60), tmp_path / "long.mid")
    with caplog.at_level(logging.WARNING, logger="tunesmith.io.audio"):
        render_midi_file(midi, tmp_path / "long.wav", engine=engine, sample_rate=8000, max_seconds=10)
    info = sf.info(str(tmp_path / "long.wav"))
    assert 10 <= info.duration <= 13  # the cap plus a release tail (FluidSynth: about 1.2 s), not a minute
    assert any("lasts 60 s with 60 notes; rendering only its first 10 s" in r.getMessage() for r in caplog.records)


def test_render_stops_before_the_note_past_the_note_cap(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="tunesmith.io.audio"):
        render_score(_legato_song(60), tmp_path / "n.wav", sample_rate=8000, engine="builtin", max_notes=5)
    assert 5 <= sf.info(str(tmp_path / "n.wav")).duration <= 6  # notes 0-4 s, cut where the 6th starts
    assert any("first 5 s (render caps: 600 s, 5 notes)" in r.getMessage() for r in caplog.records)


def test_render_under_the_cap_logs_nothing(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="tunesmith.io.audio"):
        render_score(_legato_song(6), tmp_path / "short.wav", sample_rate=8000, engine="builtin")
    assert not [r for r in caplog.records if r.name == "tunesmith.io.audio"]
    assert sf.info(str(tmp_path / "short.wav")).duration >= 6
