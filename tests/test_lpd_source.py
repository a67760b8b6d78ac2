"""LPD-5 `.npz` files as a data source, and frame windows along time for multitrack rolls.

The npz files are built here from MIT-licensed real MIDI (`fixtures/realmidi/miditok_tests`, see its
licence note): encoded as five LPD-5 group rolls at LPD's 24 steps per beat and written in the
pypianoroll format, so the real Lakh Pianoroll files (which users download) read the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import REALMIDI
from test_corpora_files import write_pypianoroll_npz
from tunesmith.core.constants import MULTITRACK_GROUPS, MULTITRACK_PROGRAMS
from tunesmith.core.errors import UserError
from tunesmith.data.build import prepare_data, time_axis
from tunesmith.data.config import DataConfig
from tunesmith.data.datasets import FrameWindows, window_offsets
from tunesmith.data.sources import describe_source, load_scores
from tunesmith.io.midi import read_midi
from tunesmith.representations import get_representation

MULTITRACK = REALMIDI / "miditok_tests" / "MIDIs_multitrack"
SONGS = ("Aicha.mid", "Mr. Blue Sky.mid", "Funkytown.mid")
GROUP_TRACKS = [(g.capitalize(), MULTITRACK_PROGRAMS[g], g == "drums") for g in MULTITRACK_GROUPS]
LPD = get_representation("multitrack", steps_per_quarter=24)  # LPD's own resolution


def write_lpd(path: Path, song: str, binarized: bool = False) -> np.ndarray:
    """Write the real MIDI file `song` as an LPD-5 npz at `path`; returns its (5, steps, 128) roll."""
    roll = LPD.encode(read_midi(MULTITRACK / song))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_pypianoroll_npz(path, [(r > 0) if binarized else r for r in roll], tracks=GROUP_TRACKS)
    return roll


def test_an_lpd_file_is_a_source_whose_rolls_are_the_files_rolls(tmp_path):
    roll = write_lpd(tmp_path / "aicha.npz", "Aicha.mid")
    assert np.all(roll.any(axis=(1, 2)))  # every group plays: a fair test of the five tracks
    assert describe_source(str(tmp_path / "aicha.npz")) == "lpd-file"
    [(piece_id, score)] = load_scores(str(tmp_path / "aicha.npz"))
    assert piece_id == "aicha.npz"
    assert [t.name for t in score.tracks] == [g.capitalize() for g in MULTITRACK_GROUPS]
    assert np.array_equal(LPD.encode(score), roll)  # velocities and note boundaries intact


def test_binarized_lpd_files_keep_where_notes_sound(tmp_path):
    roll = write_lpd(tmp_path / "blue.npz", "Mr. Blue Sky.mid", binarized=True)
    [(_, score)] = load_scores(str(tmp_path / "blue.npz"))
    back = LPD.encode(score)
    pitched = slice(0, MULTITRACK_GROUPS.index("drums"))
    assert np.array_equal(back[pitched] > 0, roll[pitched] > 0)
    assert set(np.unique(back[back > 0])) == {64}  # pypianoroll's velocity for binarized rolls


def test_a_folder_of_lpd_and_midi_files_skips_a_bad_file_with_its_reason(tmp_path, caplog):
    folder = tmp_path / "lpd_5_cleansed"
    write_lpd(folder / "A" / "B" / "one.npz", "Aicha.mid")
    write_lpd(folder / "two.npz", "Funkytown.mid")
    good = (folder / "two.npz").read_bytes()
    (folder / "truncated.npz").write_bytes(good[: len(good) // 2])
    (folder / "three.mid").write_bytes((MULTITRACK / "Mr. Blue Sky.mid").read_bytes())
    assert describe_source(str(folder)) == "midi-folder"
    pieces = load_scores(str(folder))
    assert [pid for pid, _ in pieces] == ["A/B/one.npz", "three.mid", "two.npz"]
    assert f"skipped {folder / 'truncated.npz'}: LPD file" in caplog.text
    with pytest.raises(UserError, match="is not a readable npz file"):
        load_scores(str(folder / "truncated.npz"))  # alone, the bad file is the error


def test_frame_windows_cut_multitrack_rolls_along_time():
    rng = np.random.default_rng(0)
    long, short = rng.integers(0, 128, (5, 150, 128), np.uint8), rng.integers(0, 128, (5, 10, 128), np.uint8)
    windows = FrameWindows([long, short], window=64, stride=64, time_axis=1)
    assert len(windows) == len(window_offsets(150, 64, 64)) + 1 == 4
    for item, offset in zip(range(3), window_offsets(150, 64, 64), strict=True):
        frames = windows[item]["frames"].numpy()
        assert frames.shape == (64, 5, 128)
        assert np.array_equal(frames, long[:, offset : offset + 64].transpose(1, 0, 2))
    padded = windows[3]
    assert padded["frames"].shape == (64, 5, 128) and padded["mask"].sum() == 10
    assert np.array_equal(padded["frames"][:10].numpy(), short.transpose(1, 0, 2))
    assert not padded["frames"][10:].any()


def test_training_data_from_an_lpd_folder_is_windowed_along_time(tmp_path):
    for song in SONGS:
        write_lpd(tmp_path / "lpd" / f"{song[:-4]}.npz", song)
    config = DataConfig(source=str(tmp_path / "lpd"), representation="multitrack", window=64, stride=64,
                        valid_fraction=0.3)
    prepared = prepare_data(config, "frames")
    rep = prepared.representation
    assert time_axis(rep) == 1 and sum(prepared.provenance["pieces"].values()) == len(SONGS)
    rolls = [rep.encode(score) for score in prepared.scores["train"]]
    assert len(prepared.train) == sum(len(window_offsets(r.shape[1], 64, 64)) for r in rolls)
    first = prepared.train[0]["frames"].numpy()
    assert first.shape == (64, 5, 128)
    assert np.array_equal(first, rolls[0][:, :64].transpose(1, 0, 2))
