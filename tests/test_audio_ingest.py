"""`tunesmith ingest --audio`: recordings -> chunked audio dataset, with MIDI ingest's guarantees
(report and quarantine, sha256 dedup, resume, checksummed atomic shards, isolated decoders)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tunesmith.core.errors import UserError
from tunesmith.io import audio_ingest
from tunesmith.io.audio_cache import AudioDataset
from tunesmith.io.audio_ingest import AudioSettings, ingest_audio_folder
from tunesmith.io.audio_input import chunks, read_audio

AUDIO = Path(__file__).parent / "fixtures" / "audio"
TUNESMITH = Path(sys.executable).parent / "tunesmith"
SETTINGS = AudioSettings(sample_rate=8000, channels=1, chunk_seconds=2.0)


def make_folder(root: Path) -> Path:
    """Two real recordings (one twice, under another name and case), a tone, and broken files."""
    src = root / "src"
    (src / "sub").mkdir(parents=True)
    for path in AUDIO.glob("*.ogg"):
        shutil.copy(path, src / path.name)
    shutil.copy(AUDIO / "brahms_hungarian_dance_5_excerpt.ogg", src / "sub" / "COPY.OGG")
    t = np.arange(3 * 22050) / 22050
    sf.write(src / "sub" / "tone.wav", (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 22050)
    good = (src / "sub" / "tone.wav").read_bytes()
    (src / "cut.wav").write_bytes(good[: len(good) // 2])
    (src / "empty.mp3").write_bytes(b"")
    (src / "notes.flac").write_text("not audio at all\n" * 50)
    sf.write(src / "short.wav", np.full(4000, 0.3, np.float32), 8000)  # 0.5 s: no 2-s chunk
    sf.write(src / "silent.wav", np.zeros(40000, np.float32), 8000)
    (src / "readme.txt").write_text("ignored: not an audio name")
    os.symlink(src / "sub" / "tone.wav", src / "link.wav")
    return src


def by_path(report: dict) -> dict[str, dict]:
    return {f["path"]: f for f in report["files"]}


def test_ingest_reports_every_file_and_stores_its_chunks(tmp_path):
    src, out = make_folder(tmp_path), tmp_path / "data"
    report = ingest_audio_folder(src, out, SETTINGS, workers=2)
    files = by_path(report)
    assert report["summary"] == {"ok": 3, "skipped": 6, "duplicate": 1, "chunks": 7}
    assert files["brahms_hungarian_dance_5_excerpt.ogg"]["n_chunks"] == 3  # 6 s in 2-s chunks
    assert files["sub/tone.wav"]["n_chunks"] == 1
    assert files["sub/COPY.OGG"]["status"] == "duplicate"
    reasons = {path: (f["reason"] or "").split(":")[0] for path, f in files.items() if f["status"] == "skipped"}
    assert reasons == {"cut.wav": "truncated", "empty.mp3": "empty", "notes.flac": "unreadable",
                       "short.wav": "too short", "silent.wav": "silent", "link.wav": "not a regular file"}
    quarantine = (out / "quarantine.txt").read_text().splitlines()
    assert len(quarantine) == 6 and json.loads((out / "report.json").read_text())["summary"]["chunks"] == 7
    dataset = AudioDataset(out)
    assert len(dataset) == 3 and dataset.paths[0] == "brahms_hungarian_dance_5_excerpt.ogg"
    stored = dataset.chunks(0)
    expected = np.stack(list(chunks(read_audio(src / dataset.paths[0], 8000, 1), 8000, 2.0)))
    assert stored.shape == expected.shape == (3, 1, 16000)
    assert np.abs(stored - expected).max() < 2e-4  # int16 storage


def test_rerun_resumes_and_sees_changes(tmp_path):
    src, out = make_folder(tmp_path), tmp_path / "data"
    first = ingest_audio_folder(src, out, SETTINGS, workers=1)
    again = ingest_audio_folder(src, out, SETTINGS, workers=1)
    assert again["decoded"] == 0 and again["reused"] == len(first["files"]) - 1  # the symlink is looked at again
    assert again["summary"] == first["summary"]
    t = np.arange(2 * 8000) / 8000
    sf.write(src / "new.flac", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 8000, format="FLAC")
    sf.write(src / "sub" / "tone.wav", (0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), 8000)
    third = ingest_audio_folder(src, out, SETTINGS, workers=1)
    assert third["decoded"] == 2 and third["summary"]["ok"] == 4
    assert sorted(AudioDataset(out).paths) == sorted(["brahms_hungarian_dance_5_excerpt.ogg",
                                                      "kevin_macleod_vibe_ace_excerpt.ogg", "new.flac", "sub/tone.wav"])


def test_settings_source_and_damage_are_checked(tmp_path):
    src, out = make_folder(tmp_path), tmp_path / "data"
    ingest_audio_folder(src, out, SETTINGS, workers=1)
    with pytest.raises(UserError, match="other settings: sample_rate 8000"):
        ingest_audio_folder(src, out, AudioSettings(sample_rate=12000, chunk_seconds=2.0))
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(UserError, match="was built from"):
        ingest_audio_folder(other, out, SETTINGS)
    shard = out / "shards" / "000000.bin"
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(UserError, match="does not match its checksum"):
        AudioDataset(out)
    with pytest.raises(UserError, match="--repair"):
        ingest_audio_folder(src, out, SETTINGS)
    repaired = ingest_audio_folder(src, out, SETTINGS, repair=True)
    assert repaired["repaired"] == ["000000"] and repaired["summary"]["ok"] == 3
    assert len(AudioDataset(out)) == 3
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("mine")
    with pytest.raises(UserError, match="not a tunesmith dataset"):
        ingest_audio_folder(src, tmp_path / "junk", SETTINGS)


def test_a_hanging_or_crashing_decoder_costs_one_file(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(AUDIO / "kevin_macleod_vibe_ace_excerpt.ogg", src / "good.ogg")
    (src / "hang.wav").write_bytes(b"HANG" * 100)
    (src / "crash.wav").write_bytes(b"CRASH" * 100)
    real = audio_ingest.decode_chunks

    def decode(data, settings):  # runs in the forked decoder
        if data.startswith(b"HANG"):
            time.sleep(60)
        if data.startswith(b"CRASH"):
            os.kill(os.getpid(), signal.SIGKILL)  # as a segfault in libsndfile would end it
        return real(data, settings)

    monkeypatch.setattr(audio_ingest, "decode_chunks", decode)
    fast = AudioSettings(sample_rate=8000, chunk_seconds=2.0, decode_seconds=3.0)
    started = time.perf_counter()
    files = by_path(ingest_audio_folder(src, tmp_path / "data", fast, workers=2))
    assert time.perf_counter() - started < 30
    assert files["good.ogg"]["status"] == "ok"
    assert files["hang.wav"]["reason"].startswith("decode timed out")
    assert files["crash.wav"]["reason"].startswith("decoder crashed")


def test_cli_ingest_audio(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(AUDIO / "kevin_macleod_vibe_ace_excerpt.ogg", src / "a.ogg")
    (src / "b.wav").write_bytes(b"RIFF")
    run = [str(TUNESMITH), "ingest", str(src), "--audio", "--out", str(tmp_path / "d"), "--chunk-seconds", "3"]
    done = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("1 ok, 1 skipped (1 unreadable), 0 duplicate; 2 chunks (0.1 min of audio)")
    bad = subprocess.run([*run[:2], str(tmp_path / "none"), *run[3:]], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "does not exist" in bad.stderr
    stereo = subprocess.run([*run, "--channels", "3"], capture_output=True, text=True, timeout=120)
    assert stereo.returncode == 2 and "channels must be 1 or 2" in stereo.stderr
