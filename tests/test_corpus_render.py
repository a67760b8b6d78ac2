"""`tunesmith corpus render`: a bundled corpus as audio files, cached, atomic, one engine per folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from tunesmith.corpora.render import render_corpus
from tunesmith.io.audio import find_fluidsynth, find_soundfont
from tunesmith.io.audio_input import read_audio

TUNESMITH = Path(sys.executable).parent / "tunesmith"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(TUNESMITH), *args], capture_output=True, text=True, timeout=300, env=dict(os.environ))


def test_render_writes_each_piece_once_and_reuses_it(tmp_path):
    out = tmp_path / "bach-audio"
    first = render_corpus("bach", out, limit=2, sample_rate=8000, engine="builtin")
    assert first["rendered"] == 2 and first["skipped"] == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["bwv1.6.flac", "bwv10.7.flac", "render.json"]  # no temp files left
    samples = read_audio(out / "bwv10.7.flac", 8000)
    assert 40 < samples.shape[1] / 8000 < 50  # the chorale lasts 44 s
    mtime = (out / "bwv1.6.flac").stat().st_mtime_ns
    again = render_corpus("bach", out, limit=3, sample_rate=8000, engine="builtin")
    assert again["rendered"] == 1 and again["skipped"] == 2
    assert (out / "bwv1.6.flac").stat().st_mtime_ns == mtime  # not rendered again
    record = json.loads((out / "render.json").read_text())
    assert record["settings"]["sample_rate"] == 8000 and len(record["pieces"]) == 3
    assert all(p["engine"].startswith("built-in") for p in record["pieces"].values())


def test_other_settings_replace_the_old_files(tmp_path):
    out = tmp_path / "a"
    render_corpus("bach", out, limit=2, sample_rate=8000, engine="builtin")
    render_corpus("bach", out, limit=1, sample_rate=16000, engine="builtin")
    assert sorted(p.name for p in out.iterdir()) == ["bwv1.6.flac", "render.json"]  # bwv10.7 at 8 kHz is gone
    assert read_audio(out / "bwv1.6.flac", 16000).shape[1] > 0


def test_mono_renders_one_channel(tmp_path):
    engine = "fluidsynth" if find_fluidsynth() and find_soundfont() else "builtin"  # FluidSynth renders stereo
    render_corpus("bach", tmp_path, limit=1, sample_rate=8000, engine=engine, mono=True)
    assert sf.info(tmp_path / "bwv1.6.flac").channels == 1
    assert json.loads((tmp_path / "render.json").read_text())["settings"]["mono"] is True


def test_cli_render_and_its_errors(tmp_path):
    done = run_cli("corpus", "render", "bach", "--out", str(tmp_path / "o"), "--limit", "1", "--engine", "builtin",
                   "--wav", "--sample-rate", "11025")
    assert done.returncode == 0, done.stderr
    assert "rendered 1 pieces of corpus 'bach'" in done.stdout and "built-in" in done.stdout
    assert np.abs(read_audio(tmp_path / "o" / "bwv1.6.wav", 11025)).max() > 0.5
    for args, message in [(["nope"], "unknown corpus"), (["bach", "--engine", "organ"], "--engine must be"),
                          (["bach", "--sample-rate", "100"], "--sample-rate must be")]:
        bad = run_cli("corpus", "render", *args, "--out", str(tmp_path / "x"), "--limit", "1")
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr
    (tmp_path / "file").write_text("")
    assert run_cli("corpus", "render", "bach", "--out", str(tmp_path / "file")).returncode == 2
