"""Loaders of downloaded benchmark files: JSB Chorales (JSON / restricted pickle) and LPD-5 npz."""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tunesmith.core.errors import UserError
from tunesmith.corpora.jsb import (
    grid_from_name,
    jsb_scores,
    jsb_to_score,
    load_jsb,
    read_jsb_file,
    score_to_jsb,
    split_report,
)
from tunesmith.corpora.lpd import load_lpd, read_lpd, roll_to_notes

SHARED_JSB = Path(__file__).resolve().parents[2] / "shared" / "data" / "jsb"


# ---------------------------------------------------------------- JSB


def test_jsb_fixture_loads_as_bool_rolls(jsb_tiny):
    rolls = load_jsb(jsb_tiny)
    raw = json.loads(jsb_tiny.read_text())
    assert {k: len(v) for k, v in rolls.items()} == {"train": 6, "valid": 4}
    first = rolls["train"][0]
    assert first.dtype == bool and first.shape == (len(raw["train"][0]), 88)
    assert sorted(np.flatnonzero(first[0]) + 21) == sorted(raw["train"][0][0])  # key 0 is MIDI 21
    assert "not the canonical 229/76/77 split" in split_report(rolls)
    with pytest.raises(UserError, match="not the canonical split"):
        load_jsb(jsb_tiny, canonical=True)


def test_jsb_roll_score_roll_round_trip_on_both_grids(jsb_tiny):
    for piece in load_jsb(jsb_tiny)["train"]:
        score = jsb_to_score(piece, steps_per_quarter=1)
        assert score.ticks_per_quarter == 480 and len(score.tracks) == 1
        assert np.array_equal(score_to_jsb(score, 1, n_steps=len(piece)), piece)
        sixteenth = jsb_to_score(piece, steps_per_quarter=4)
        assert sixteenth.end() * 4 == score.end()
        assert np.array_equal(score_to_jsb(sixteenth, 4, n_steps=len(piece)), piece)


def test_jsb_scores_lists_pieces_by_split(jsb_tiny):
    pieces = jsb_scores(jsb_tiny, split="valid")
    assert [i for i, _ in pieces] == ["valid/000", "valid/001", "valid/002", "valid/003"]
    assert len(jsb_scores(jsb_tiny)) == 10
    with pytest.raises(UserError, match="no split 'test'"):
        jsb_scores(jsb_tiny, split="test")


def test_jsb_held_steps_become_one_note():
    roll = np.zeros((4, 88), bool)
    roll[0:3, 60 - 21] = True
    roll[3, 64 - 21] = True
    notes = jsb_to_score(roll).tracks[0].notes
    assert [(n.time, n.duration, n.pitch) for n in notes] == [(0, 1440, 60), (1440, 480, 64)]


def test_jsb_hand_made_pickle_loads_like_json(tmp_path, jsb_tiny):
    raw = json.loads(jsb_tiny.read_text())
    as_tuples = {k: [[tuple(step) for step in piece] for piece in v] for k, v in raw.items()}
    for protocol in (0, 2, pickle.HIGHEST_PROTOCOL):  # 0 and 2 are what Python 2 wrote in 2012
        path = tmp_path / f"jsb-{protocol}.pickle"
        path.write_bytes(pickle.dumps(as_tuples, protocol=protocol))
        from_pickle, from_json = load_jsb(path), load_jsb(jsb_tiny)
        assert from_pickle.keys() == from_json.keys()
        for split in from_json:
            pairs = zip(from_pickle[split], from_json[split], strict=True)
            assert all(np.array_equal(a, b) for a, b in pairs)


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_jsb_malicious_pickle_is_refused_without_running_anything(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps({"train": [[[60]]], "valid": _Exploit(marker)}, protocol=2))
    with pytest.raises(UserError, match="only plain data"):
        load_jsb(path)
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # the same bytes through plain pickle do run the command
    assert marker.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"train": [[[60.5]]]}, "not an integer MIDI pitch"),
        ({"train": [[[True]]]}, "not an integer MIDI pitch"),
        ({"train": [[[12]]]}, "outside the piano range"),
        ({"train": [[["60"]]]}, "not an integer MIDI pitch"),
        ({"train": [[60]]}, "must be a list"),
        ({"tests": []}, "unknown splits"),
        ([[60]], "mapping of splits"),
    ],
)
def test_jsb_bad_content_is_a_user_error(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(UserError, match=message):
        load_jsb(path)


def test_jsb_unreadable_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_jsb_file(tmp_path / "missing.json")
    (tmp_path / "junk.pickle").write_bytes(b"\x00\x01garbage")
    with pytest.raises(UserError, match="neither JSON nor"):
        read_jsb_file(tmp_path / "junk.pickle")
    (tmp_path / "cut.json").write_text('{"train": [[[60')
    with pytest.raises(UserError, match="not valid JSON"):
        read_jsb_file(tmp_path / "cut.json")


def test_jsb_integral_floats_load_and_grid_is_guessed_from_the_name(tmp_path):
    path = tmp_path / "jsb-16th.json"
    path.write_text(json.dumps({"train": [[[60.0, 64.0], []]]}))
    assert np.flatnonzero(load_jsb(path)["train"][0][0]).tolist() == [39, 43]
    assert grid_from_name(path) == 4
    assert grid_from_name("JSB Chorales.pickle") == 1 and grid_from_name("x.json") is None


@pytest.mark.skipif(not SHARED_JSB.is_dir(), reason="shared JSB data not present")
def test_jsb_shared_train_valid_files_have_the_canonical_sizes():
    for name, steps in (("quarter", (13807, 4602)), ("16th", (55228, 18408))):
        rolls = load_jsb(SHARED_JSB / f"jsb-chorales-{name}.trainvalid.json", canonical=True)
        assert [len(rolls["train"]), len(rolls["valid"])] == [229, 76]
        assert (sum(map(len, rolls["train"])), sum(map(len, rolls["valid"]))) == steps


# ---------------------------------------------------------------- LPD

LPD5 = [("Drums", 0, True), ("Piano", 0, False), ("Guitar", 24, False), ("Bass", 32, False),
        ("Strings", 48, False)]


def write_pypianoroll_npz(path: Path, rolls: list[np.ndarray], tracks=LPD5, resolution=24, tempo=None,
                          downbeat=None, dense=False, info_key="resolution") -> None:
    """Write the documented pypianoroll format by hand: CSC parts per roll, info.json as a zip member."""
    arrays = {}
    if tempo is not None:
        arrays["tempo"] = tempo
    if downbeat is not None:
        arrays["downbeat"] = downbeat
    for i, roll in enumerate(rolls):
        if dense:
            arrays[f"pianoroll_{i}"] = roll
            continue
        pitch, step = np.nonzero(roll.T)  # CSC order: column by column (pitch), rows (steps) ascending
        arrays[f"pianoroll_{i}_csc_data"] = roll.T[pitch, step]
        arrays[f"pianoroll_{i}_csc_indices"] = step.astype(np.int32)
        counts = np.bincount(pitch, minlength=128)
        arrays[f"pianoroll_{i}_csc_indptr"] = np.concatenate([[0], np.cumsum(counts)])
        arrays[f"pianoroll_{i}_csc_shape"] = np.asarray(roll.shape)
    info = {info_key: resolution, "name": "fixture"}
    info.update({str(i): {"name": n, "program": p, "is_drum": d} for i, (n, p, d) in enumerate(tracks)})
    np.savez_compressed(path, **arrays)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("info.json", json.dumps(info))


def _lpd_rolls(steps=192, dtype=bool) -> list[np.ndarray]:
    rolls = []
    for i in range(5):
        roll = np.zeros((steps, 128), dtype)
        roll[0:24, 36 + i] = 100  # one beat (True in a bool roll)
        roll[48:96, 50 + i] = 100  # two beats
        rolls.append(roll)
    return rolls


@pytest.fixture
def lpd_file(tmp_path) -> Path:
    tempo = np.full((192, 1), 100.0)
    tempo[96:] = 150.0
    downbeat = np.zeros(192, bool)
    downbeat[::72] = True  # bars of 3 beats at 24 steps per beat
    path = tmp_path / "song.npz"
    write_pypianoroll_npz(path, _lpd_rolls(), tempo=tempo, downbeat=downbeat)
    return path


def test_lpd_fixture_becomes_five_tracks_with_tempo_and_meter(lpd_file):
    score = load_lpd(lpd_file)
    assert [t.name for t in score.tracks] == ["Piano", "Guitar", "Bass", "Strings", "Drums"]
    assert [t.program for t in score.tracks] == [0, 24, 32, 48, 0]
    assert [t.is_drum for t in score.tracks] == [False, False, False, False, True]
    source_index = {"Drums": 0, "Piano": 1, "Guitar": 2, "Bass": 3, "Strings": 4}
    for track in score.tracks:
        i = source_index[track.name]
        assert [(n.time, n.duration, n.pitch, n.velocity) for n in track.notes] == [
            (0, 480, 36 + i, 64), (960, 960, 50 + i, 64)]  # 20 ticks per step at 24 steps per beat
    assert [(t.time, round(t.qpm)) for t in score.tempos] == [(0, 100), (1920, 150)]
    assert [(t.time, t.numerator, t.denominator) for t in score.time_signatures] == [(0, 3, 4)]


def test_lpd_reader_agrees_with_pypianoroll(lpd_file):
    pypianoroll = pytest.importorskip("pypianoroll")
    theirs = pypianoroll.load(lpd_file)
    ours = read_lpd(lpd_file)
    assert ours["resolution"] == theirs.resolution == 24
    assert np.array_equal(ours["tempo"], theirs.tempo.reshape(-1))
    for mine, track in zip(ours["tracks"], theirs.tracks, strict=True):
        assert (mine["name"], mine["program"], mine["is_drum"]) == (track.name, track.program, track.is_drum)
        assert mine["roll"].dtype == track.pianoroll.dtype and np.array_equal(mine["roll"], track.pianoroll)


def test_lpd_velocity_rolls_dense_rolls_and_old_info_key(tmp_path):
    rolls = _lpd_rolls(dtype=np.uint8)
    rolls[1][24:48, 37] = 90  # a velocity change right after a note: a new note, not a longer one
    path = tmp_path / "dense.npz"
    write_pypianoroll_npz(path, rolls, dense=True, info_key="beat_resolution")
    piano = load_lpd(path).tracks[0]
    assert [(n.time, n.duration, n.pitch, n.velocity) for n in piano.notes] == [
        (0, 480, 37, 100), (480, 480, 37, 90), (960, 960, 51, 100)]
    assert read_lpd(path)["tempo"] is None


def test_lpd_groups_other_tracks_by_program(tmp_path):
    roll = np.zeros((24, 128), bool)
    roll[0:6, 40] = True
    path = tmp_path / "other.npz"
    write_pypianoroll_npz(path, [roll, roll], tracks=[("Fretless", 35, False), ("Organ", 19, False)])
    score = load_lpd(path)
    assert [len(t.notes) for t in score.tracks] == [1, 0, 1, 0, 0]  # organ -> piano, fretless -> bass


def test_roll_to_notes_runs():
    roll = np.zeros((6, 128), np.uint8)
    roll[1:3, 60] = 80
    roll[3:6, 60] = 80  # contiguous same velocity: one note (the roll cannot show a re-attack)
    pitch, start, duration, velocity = roll_to_notes(roll)
    assert (pitch.tolist(), start.tolist(), duration.tolist(), velocity.tolist()) == ([60], [1], [5], [80])


def test_lpd_bad_files_are_user_errors(tmp_path, lpd_file):
    with pytest.raises(UserError, match="does not exist"):
        load_lpd(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(UserError, match="not a readable npz"):
        load_lpd(tmp_path / "junk.npz")
    no_info = tmp_path / "noinfo.npz"
    np.savez(no_info, x=np.zeros(2))
    with pytest.raises(UserError, match="no info.json"):
        load_lpd(no_info)
    broken = tmp_path / "broken.npz"
    with np.load(lpd_file) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "info.json"}
    arrays["pianoroll_0_csc_indptr"] = arrays["pianoroll_0_csc_indptr"][::-1].copy()
    np.savez(broken, **arrays)
    with zipfile.ZipFile(broken, "a") as archive, zipfile.ZipFile(lpd_file) as source:
        archive.writestr("info.json", source.read("info.json"))
    with pytest.raises(UserError, match="inconsistent"):
        load_lpd(broken)


def test_lpd_array_announcing_gigabytes_is_refused_before_loading(tmp_path):
    header = io.BytesIO()  # a .npy magic + header that claims 1.3 GB, followed by no data at all
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                  "shape": (10_000_000, 128)})
    path = tmp_path / "claims-huge.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("pianoroll_0.npy", header.getvalue())
        archive.writestr("info.json", json.dumps({"resolution": 24, "0": {"name": "Piano"}}))
    with pytest.raises(UserError, match="too large"):
        load_lpd(path)
