"""Audio metrics on piano-key energies (evaluation/audio_metrics.py, audio_sets.py): golden values on
hand-made keys, then real recordings through the pianokeys representation and `tunesmith evaluate`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tunesmith.cli import main
from tunesmith.core.errors import UserError
from tunesmith.evaluation.audio_metrics import chunk_features, compare_key_sets, key_energy_overlap, split_chunks
from tunesmith.evaluation.audio_sets import folder_chunks, is_audio_reference
from tunesmith.representations import get_representation

FIXTURES = Path(__file__).parent / "fixtures" / "audio"


def test_chunk_features_golden_values():
    keys = np.zeros((1, 5, 100))
    keys[0, 2, 10:20] = 1.0  # key 2 struck twice, 0.2 s each
    keys[0, 2, 30:40] = 1.0
    keys[0, 4, 30:40] = 0.6  # and key 4 with the second note
    f = chunk_features(keys, frame_seconds=0.02, lowest_key=40)
    assert f["key_share"] == pytest.approx([0, 0, 20 / 26, 0, 6 / 26])
    assert f["onset_rate"] == pytest.approx(3 / 2.0)  # 3 onsets in 2 s
    assert f["silence"] == pytest.approx(0.8)  # 20 of 100 frames sound
    assert f["polyphony"] == pytest.approx(1.5)  # 1 key in frames 10-19, 2 in 30-39
    assert f["centroid"] == pytest.approx(40 + (2 * 20 + 4 * 6) / 26)
    assert 0 <= f["flatness"] < 0.01  # a few clear keys, far from noise
    noise = chunk_features(np.full((5, 100), 0.5), 0.02)
    assert noise["flatness"] == pytest.approx(1.0, abs=1e-4) and noise["onset_rate"] == 0


def test_overlap_is_one_for_one_set_and_near_zero_for_disjoint_keys():
    rng = np.random.default_rng(0)
    low = [np.pad(rng.random((1, 3, 50)), ((0, 0), (0, 3), (0, 0))) for _ in range(20)]
    high = [np.pad(rng.random((1, 3, 50)), ((0, 0), (3, 0), (0, 0))) for _ in range(20)]
    same = compare_key_sets(low, low, 0.02)
    assert same["generated"]["key_energy_overlap"] == pytest.approx(1.0, abs=1e-4)
    assert same["generated"]["key_frechet"] == pytest.approx(0.0, abs=1e-9)
    apart = compare_key_sets(low, high, 0.02)["generated"]
    assert apart["key_energy_overlap"] < 0.05 and apart["key_profile_intersection"] == pytest.approx(0, abs=1e-9)
    assert "ceiling" in same and 0 < same["ceiling"]["key_energy_overlap"] <= 1


def test_split_chunks_drops_remainders_and_silence():
    a = np.zeros((1, 4, 250))
    a[..., 100:200] = 0.5
    a[..., 0:100] = 0.2  # below SILENCE_LEVEL: leakage, not music
    chunks = split_chunks([a], 100)
    assert len(chunks) == 1 and chunks[0].shape == (1, 4, 100)  # [0, 100) silent, [200, 250) too short


def test_real_recordings_differ_from_each_other_more_than_from_themselves():
    rep = get_representation("pianokeys", channels=1, lowest_key=28, highest_key=64)
    brahms, vibe = (folder_chunks_of(name, rep) for name in ("brahms", "vibe"))
    assert key_energy_overlap(stack(brahms), stack(brahms)) == pytest.approx(1.0, abs=1e-4)
    across = key_energy_overlap(stack(brahms), stack(vibe))
    assert across < 0.9


def folder_chunks_of(name: str, rep) -> list[np.ndarray]:
    from tunesmith.io.audio_input import read_audio

    path = next(FIXTURES.glob(f"*{name}*.ogg"))
    return split_chunks([rep.encode_audio(read_audio(path, 12000, 1))], 25, 10)  # 0.5-s chunks


def stack(chunks: list[np.ndarray]) -> np.ndarray:
    return np.stack([c.mean(0).sum(1) / c.sum() for c in chunks])


def test_evaluate_measures_audio_folders(tmp_path, monkeypatch, capsys):
    generated, reference = tmp_path / "gen", tmp_path / "ref"
    for folder in (generated, reference):
        folder.mkdir()
        for path in FIXTURES.glob("*.ogg"):
            shutil.copy(path, folder / path.name)
    shutil.copy(next(FIXTURES.glob("*.ogg")), generated / "sample_01_primed.ogg")  # left out: not new audio
    (reference / "broken.wav").write_bytes(b"RIFF junk")
    assert is_audio_reference(str(reference)) and not is_audio_reference(str(Path(__file__).parent / "fixtures"))
    monkeypatch.setattr("tunesmith.evaluation.audio_sets.DEFAULT_FRAMES", 100)  # 2-s chunks of 6-s excerpts
    monkeypatch.setattr("sys.argv", ["tunesmith", "evaluate", str(generated), "--reference", str(reference),
                                     "--out", str(tmp_path / "r.json")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0, capsys.readouterr().err
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["chunks"] == {"generated": 6, "reference": 6, "frames": 100}
    assert result["generated"]["key_energy_overlap"] == pytest.approx(1.0, abs=1e-4)  # the same recordings
    assert "key-energy overlap 1.000" in capsys.readouterr().out


def test_too_little_audio_is_one_sentence(tmp_path):
    shutil.copy(next(FIXTURES.glob("*.ogg")), tmp_path / "a.ogg")
    with pytest.raises(UserError, match="needs at least 2"):
        folder_chunks(tmp_path, get_representation("pianokeys", channels=1), 500)
