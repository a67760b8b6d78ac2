"""Issue 10's drills that a test can run fast: a full disk during `generate`, SIGKILL during `generate`,
and `train --resume` on data that changed since the checkpoint (the provenance fingerprint).

Each drill goes through the real command line (`tunesmith.cli.main` in-process, or a subprocess for
the kill) and checks what a user would see: one sentence and exit code 2 on failure, complete files
only, a `generation.json` that lists exactly files that exist, and a next run that works.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import REALMIDI
from test_cli_fuzz import run_main
from tunesmith.io import atomic
from tunesmith.io.midi import read_midi
from tunesmith.models.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
GENERATE = ("generate", "lstm-bach", "--n", "20", "--bars", "1", "--seed", "3")


def _fill_until_full(budget: list[int]):
    """A stand-in for `atomic._fill` on a disk with `budget[0]` free bytes: it writes what fits, then
    raises ENOSPC without a file name, as `write(2)` does."""

    def fill(out, data: bytes) -> None:
        assert isinstance(data, bytes)
        fits = max(0, min(len(data), budget[0]))
        out.write(data[:fits])
        budget[0] -= fits
        if fits < len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    return fill


def _write_sizes(monkeypatch, capsys, out: Path) -> list[int]:
    """The sizes of every write a good run makes, in order (and the run's files, as the reference)."""
    sizes: list[int] = []
    real = atomic._fill
    monkeypatch.setattr(atomic, "_fill", lambda handle, data: (sizes.append(len(data)), real(handle, data)))
    code, _, err = run_main([*GENERATE, "--out", str(out)], capsys)
    monkeypatch.undo()
    assert code == 0, err
    return sizes


def _listed(out: Path) -> list[str]:
    sidecar = out / "generation.json"
    return json.loads(sidecar.read_text())["files"] if sidecar.exists() else []


def _check_folder(out: Path, reference: Path) -> list[str]:
    """No temp or empty file; every MIDI file equals the good run's; generation.json lists only files that
    exist. Returns the MIDI file names."""
    names = sorted(p.name for p in out.iterdir())
    assert not [n for n in names if n.endswith(".tmp")], names
    midi = [n for n in names if n.endswith(".mid")]
    for name in midi:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    assert set(_listed(out)) <= set(midi)
    return midi


@pytest.mark.parametrize("full_after_writes", [0, 5, 16, 31, 39])
def test_full_disk_during_generate_is_one_sentence_and_the_next_run_works(
        full_after_writes, tmp_path, monkeypatch, capsys):
    reference = tmp_path / "reference"
    sizes = _write_sizes(monkeypatch, capsys, reference)
    assert len(sizes) == 2 * 20  # each MIDI file, then generation.json listing it
    budget = [sum(sizes[:full_after_writes]) + sizes[full_after_writes] // 2]
    monkeypatch.setattr(atomic, "_fill", _fill_until_full(budget))
    out = tmp_path / "out"
    code, _, err = run_main([*GENERATE, "--out", str(out)], capsys)
    assert code == 2 and "Traceback" not in err
    [line] = err.strip().splitlines()
    assert "No space left on device" in line and str(out) in line, line
    assert len(_check_folder(out, reference)) == (full_after_writes + 1) // 2  # the MIDI files written whole
    monkeypatch.undo()
    code, _, err = run_main([*GENERATE, "--out", str(out)], capsys)
    assert code == 0, err
    assert _check_folder(out, reference) == _listed(out) == [f"sample_{i:02d}.mid" for i in range(1, 21)]


def test_sigkill_during_generate_keeps_every_finished_piece(tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "tunesmith.cli", "-q", "generate", "lstm-bach", "--n", "64", "--bars", "4",
               "--out", str(out)]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (out / "generation.json").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, process.stderr.read()
    listed = _listed(out)
    assert listed == [f"sample_{i:02d}.mid" for i in range(1, len(listed) + 1)] and 1 <= len(listed) < 64
    finished = sorted(p for p in out.glob("*.mid"))
    assert {p.name for p in finished} >= set(listed)
    for path in finished:  # written atomically: a file is there whole or not at all
        assert read_midi(path).note_num() > 0, path
    (out / f".sample_40.mid.{process.pid}.0123abcd.tmp").write_bytes(b"MThd")  # as a kill mid-write leaves it
    rerun = subprocess.run(command[:-6] + ["--n", "2", "--bars", "1", "--out", str(out)], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert not list(out.glob(".*.tmp")) and _listed(out) == ["sample_01.mid", "sample_02.mid"]


# ---------------------------------------------------------------- resume checks the data fingerprint


@pytest.fixture
def trained_run(tmp_path, capsys) -> tuple[Path, Path]:
    """A one-epoch debug LSTM run on a copy of the fixture melodies: (run folder, data folder)."""
    data = tmp_path / "melodies"
    shutil.copytree(REALMIDI / "sara_munafo_gan_nndl", data)
    run = tmp_path / "run"
    code, _, err = run_main(["train", str(ROOT / "configs" / "debug" / "lstm.yaml"), "--set", f"data.source={data}",
                             "--set", "trainer.max_epochs=1", "--out", str(run)], capsys)
    assert code == 0, err
    return run, data


def _resume(run: Path, capsys, *extra: str) -> tuple[int, str]:
    code, _, err = run_main(["train", "--resume", str(run), "--set", "trainer.max_epochs=2", *extra], capsys)
    return code, err


def _steps(run: Path) -> int:
    return load_checkpoint(run / "checkpoints" / "last.ckpt")["step"]


def test_resume_on_unchanged_data_continues(trained_run, capsys):
    run, _ = trained_run
    before = _steps(run)
    code, err = _resume(run, capsys)
    assert code == 0, err
    assert _steps(run) > before


@pytest.mark.parametrize("change", ["edit a file", "remove a file", "add a file"])
def test_resume_refuses_changed_data_unless_allowed(change, trained_run, capsys):
    run, data = trained_run
    files = sorted(data.glob("*.midi"))
    if change == "edit a file":  # same name, other music: only the content hash can tell
        files[0].write_bytes(files[-1].read_bytes())
    elif change == "remove a file":
        files[0].unlink()
    else:
        shutil.copy(REALMIDI / "tonejs_midi_tests" / "bach__bach_846.mid", data / "new.mid")
    before = load_checkpoint(run / "checkpoints" / "last.ckpt")
    code, err = _resume(run, capsys)
    [line] = err.strip().splitlines()
    assert code == 2 and "changed since its last checkpoint" in line and "--allow-data-change" in line, err
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["step"] == before["step"]
    code, err = _resume(run, capsys, "--allow-data-change")
    assert code == 0, err
    after = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert after["step"] > before["step"]
    assert after["provenance"] != before["provenance"]  # the checkpoint now describes the new data


def test_allow_data_change_needs_resume(tmp_path, capsys):
    code, _, err = run_main(["train", str(ROOT / "configs" / "debug" / "lstm.yaml"), "--allow-data-change",
                             "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and err.strip() == "error: --allow-data-change only applies with --resume RUN_DIR"
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- a full disk during train


def _train_argv(run: Path) -> list[str]:
    return ["train", str(ROOT / "configs" / "debug" / "lstm.yaml"), "--set",
            f"data.source={REALMIDI / 'sara_munafo_gan_nndl'}", "--set", "trainer.max_epochs=2", "--out", str(run)]


@pytest.mark.parametrize("full_at_write", [0, 1, 3, 5, -2, -1])  # -1: the last write (learning curves)
def test_full_disk_during_train_is_one_sentence_and_the_next_run_finishes(
        full_at_write, tmp_path, monkeypatch, capsys):
    """Every atomic write of a run (config.yaml, checkpoints, learning curves; metrics.csv appends and
    TensorBoard events are not simulated) may meet the full disk; then the user's next command (the
    same one, or --resume when a checkpoint exists) finishes the run as an uninterrupted one does."""
    sizes: list[int] = []
    real = atomic._fill
    monkeypatch.setattr(atomic, "_fill", lambda handle, data: (sizes.append(len(data)), real(handle, data)))
    assert run_main(_train_argv(tmp_path / "reference"), capsys)[0] == 0
    full_at_write %= len(sizes)
    monkeypatch.setattr(atomic, "_fill", _fill_until_full([sum(sizes[:full_at_write]) + sizes[full_at_write] // 2]))
    run = tmp_path / "run"
    code, _, err = run_main(_train_argv(run), capsys)
    [line] = err.strip().splitlines()
    assert code == 2 and "No space left on device" in line and str(run) in line, err
    assert not list(run.rglob("*.tmp"))
    monkeypatch.undo()
    again = ["train", "--resume", str(run)] if (run / "checkpoints" / "last.ckpt").exists() else _train_argv(run)
    code, _, err = run_main(again, capsys)
    assert code == 0, err
    finished, reference = (load_checkpoint(p / "checkpoints" / "last.ckpt") for p in (run, tmp_path / "reference"))
    assert finished["step"] == reference["step"] and finished["epoch"] == reference["epoch"] == 2
    assert all(torch.equal(w, reference["weights"][k]) for k, w in finished["weights"].items())  # exact resume
    assert (run / "metrics.csv").read_text() == (tmp_path / "reference" / "metrics.csv").read_text()  # no dup rows
