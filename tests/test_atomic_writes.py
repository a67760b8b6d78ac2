"""Every file tunesmith writes goes through `io.atomic`: 0644 under umask 022, nothing partial or left
behind when a write fails, a size check on MIDI bytes, and a sweep of temp files killed writers left."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tunesmith.core.score import make_track, new_score
from tunesmith.corpora.cache import write_cache
from tunesmith.evaluation.midinet_metrics import latent_scatter_png
from tunesmith.evaluation.report import write_report
from tunesmith.io import atomic
from tunesmith.io.atomic import sweep_temp_files, write_atomic
from tunesmith.io.audio import write_audio
from tunesmith.io.midi import write_midi
from tunesmith.io.plot import plot_score
from tunesmith.training.config import dump_config, parse_config
from tunesmith.training.curves import plot_learning_curves
from tunesmith.training.logs import RunLog


def _score():
    score = new_score()
    score.tracks.append(make_track([60, 64, 67], [0, 480, 960], [480, 480, 480]))
    return score


def _metrics_csv(folder: Path) -> Path:
    log = RunLog(folder, resume_step=None)
    log.log(10, 0, "train", {"loss": 2.0})
    log.close()
    RunLog(folder, resume_step=10).close()  # the resume rewrite
    return folder / "metrics.csv"


def _curves(folder: Path) -> Path:
    (folder / "metrics.csv").write_text("step,epoch,split,name,value\n5,0,train,loss,2\n10,1,valid,loss,1.5\n")
    return plot_learning_curves(folder)


# name -> function(folder) that writes one file there and returns its path
WRITERS = {
    "midi": lambda d: write_midi(_score(), d / "a.mid"),
    "wav": lambda d: write_audio(np.zeros(800, np.float32), 8000, d / "a.wav"),
    "png": lambda d: plot_score(_score(), d / "a.png"),
    "report.json": lambda d: write_report(d / "report.json", lambda: "<html></html>", {"a": 1}),
    "report.html": lambda d: write_report(d / "report.html", lambda: "<html></html>", {"a": 1}),
    "metrics.csv": _metrics_csv,
    "learning_curves.png": _curves,
    "config.yaml": lambda d: dump_config(parse_config({}), d / "config.yaml") or d / "config.yaml",
    "corpus cache": lambda d: write_cache(d / "c.npz", {"x": np.arange(3)}) or d / "c.npz",
    "latent scatter": lambda d: latent_scatter_png(np.random.default_rng(0).normal(size=(20, 4)),
                                                   np.random.default_rng(1).normal(size=(20, 4)), d / "l.png"),
}


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


@pytest.mark.parametrize("name", WRITERS)
def test_files_are_written_0644_under_umask_022(tmp_path, umask_022, name):
    path = WRITERS[name](tmp_path)
    assert path.is_file() and path.stat().st_size > 0
    assert path.stat().st_mode & 0o777 == 0o644
    assert _hidden(tmp_path) == []


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("name", [n for n in WRITERS if n != "metrics.csv"])
def test_failed_rename_leaves_no_target_and_no_temp_file(tmp_path, monkeypatch, name):
    monkeypatch.setattr(os, "replace", _no_space)
    with pytest.raises(OSError, match="No space"):
        WRITERS[name](tmp_path)
    produced = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "metrics.csv"]
    assert produced == []  # metrics.csv is the input of the learning curves, written by the test itself


@pytest.mark.parametrize("name", ["midi", "wav", "png", "report.json"])
def test_full_disk_during_the_write_keeps_the_old_file(tmp_path, monkeypatch, name):
    path = WRITERS[name](tmp_path)
    before = path.read_bytes()

    def half_then_full(out, data):
        out.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "_fill", half_then_full)
    with pytest.raises(OSError):
        WRITERS[name](tmp_path)
    assert path.read_bytes() == before and _hidden(tmp_path) == []


def test_write_midi_raises_when_the_written_size_is_short(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic, "_fill", lambda out, data: out.write(data[:-3]))  # a writer that lies
    with pytest.raises(OSError, match=r"wrote \d+ of \d+ bytes"):
        write_midi(_score(), tmp_path / "a.mid")
    assert list(tmp_path.iterdir()) == []


def test_metrics_rewrite_failure_keeps_the_old_log(tmp_path, monkeypatch):
    path = _metrics_csv(tmp_path)
    before = path.read_text()
    monkeypatch.setattr(os, "replace", _no_space)
    with pytest.raises(OSError):
        RunLog(tmp_path, resume_step=5)
    assert path.read_text() == before and _hidden(tmp_path) == []


def test_write_into_a_file_or_missing_folder_is_an_oserror(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError):
        write_atomic(tmp_path / "file" / "a.bin", b"data")
    with pytest.raises(OSError):
        write_atomic(tmp_path / "missing" / "a.bin", b"data")
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_sweep_removes_temp_files_of_dead_writers_and_old_ones(tmp_path):
    old = time.time() - 3600
    files = {
        "dead": f".a.mid.{_dead_pid()}.0123abcd.tmp",
        "mine": f".b.mid.{os.getpid()}.0123abcd.tmp",
        "live_recent": ".c.ckpt.1.0123abcd.tmp",  # pid 1 is alive
        "live_old": ".d.ckpt.1.89abcdef.tmp",
        "nopid_recent": ".last.ckpt.x7yz.tmp",
        "nopid_old": ".best.ckpt.k2j3.tmp",
        "visible": "notes.tmp",
        "other": ".hidden",
    }
    for key, name in files.items():
        (tmp_path / name).write_bytes(b"x")
        if key.endswith("_old"):
            os.utime(tmp_path / name, (old, old))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / files["nopid_old"]).write_bytes(b"x")
    os.utime(tmp_path / "sub" / files["nopid_old"], (old, old))

    removed = sweep_temp_files(tmp_path)
    assert sorted(p.name for p in removed) == sorted([files["dead"], files["live_old"], files["nopid_old"]])
    kept = {p.name for p in tmp_path.iterdir()}
    assert {files[k] for k in ("mine", "live_recent", "nopid_recent", "visible", "other")} <= kept
    assert (tmp_path / "sub" / files["nopid_old"]).exists()
    assert [p.parent.name for p in sweep_temp_files(tmp_path, recursive=True)] == ["sub"]
    assert sweep_temp_files(tmp_path / "missing") == []
