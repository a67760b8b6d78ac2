"""The training spine end to end on tiny data: recipe, run folder, exact resume after SIGKILL, errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tunesmith.models.checkpoint import load_checkpoint
from tunesmith.training.config import load_config
from tunesmith.training.loop import train

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "debug" / "lstm.yaml"
CLI = [sys.executable, "-m", "tunesmith.cli"]


def _run(args, **kw):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=ROOT, **kw)


def test_debug_run_writes_folder_and_learns(tmp_path):
    config = load_config(RECIPE, ["trainer.max_epochs=4"])
    run = train(config, tmp_path / "run")
    best = load_checkpoint(run / "checkpoints" / "best.ckpt")
    assert (run / "config.yaml").is_file() and (run / "metrics.csv").is_file()
    assert best["model"]["name"] == "lstm" and best["representation"]["name"] == "grid"
    assert best["provenance"]["pieces"]["valid"] >= 1
    rows = [line.split(",") for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    valid = [float(r[4]) for r in rows if r[2] == "valid" and r[3] == "loss"]
    assert len(valid) == 4 and valid[-1] < valid[0]  # it learns something


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path):
    """Kill as soon as the first mid-epoch checkpoint lands, resume, and end with the same weights
    (tolerance: exact equality on CPU, where the loop is deterministic)."""
    overrides = ["--set", "trainer.max_epochs=2", "--set", "trainer.checkpoint_every=4"]
    full, killed = tmp_path / "full", tmp_path / "killed"
    assert _run(["train", str(RECIPE), *overrides, "--out", str(full)]).returncode == 0
    proc = subprocess.Popen([*CLI, "train", str(RECIPE), *overrides, "--out", str(killed)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = killed / "checkpoints" / "last.ckpt"
    deadline = time.time() + 60
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    interrupted_at = load_checkpoint(last)["step"]
    final_step = load_checkpoint(full / "checkpoints" / "last.ckpt")["step"]
    assert interrupted_at < final_step, "the kill came too late to test a resume"
    resumed = _run(["train", "--resume", str(killed)])
    assert resumed.returncode == 0, resumed.stderr
    a = load_checkpoint(full / "checkpoints" / "last.ckpt")
    b = load_checkpoint(last)
    assert a["step"] == b["step"]
    assert all(torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"])
    assert a["metrics"]["loss"] == b["metrics"]["loss"]
    # the resumed log reads as if the run had never stopped (rows past the checkpoint are replayed once)
    assert (full / "metrics.csv").read_text() == (killed / "metrics.csv").read_text()


def test_corrupt_checkpoint_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"PK\x03\x04 truncated")
    result = _run(["generate", str(bad), "--out", str(tmp_path / "g")])
    assert result.returncode == 2
    assert "not a readable tunesmith checkpoint" in result.stderr and "Traceback" not in result.stderr


def test_unknown_config_key_is_one_clear_error(tmp_path):
    result = _run(["train", str(RECIPE), "--set", "optim.learning_rate=1", "--out", str(tmp_path / "r")])
    assert result.returncode == 2 and "optim.learning_rate" in result.stderr
    assert "Traceback" not in result.stderr


def test_generate_from_run_and_non_midi_primer(tmp_path):
    run = train(load_config(RECIPE, ["trainer.max_epochs=1"]), tmp_path / "run")
    ckpt = run / "checkpoints" / "best.ckpt"
    ok = _run(["generate", str(ckpt), "--out", str(tmp_path / "gen"), "--n", "2", "--bars", "4"])
    assert ok.returncode == 0, ok.stderr
    assert len(list((tmp_path / "gen").glob("*.mid"))) == 2
    primer = tmp_path / "primer.mid"
    primer.write_text("this is not MIDI")
    bad = _run(["generate", str(ckpt), "--out", str(tmp_path / "gen2"), "--primer", str(primer)])
    assert bad.returncode == 2 and "primer" in bad.stderr and "Traceback" not in bad.stderr
