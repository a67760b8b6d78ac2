"""metrics.csv after a kill: a resumed run's log equals an uninterrupted run's, row for row, even when the
kill falls between an end-of-epoch validation on a checkpoint step and the epoch's own checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.resources import shipped_recipe
from tunesmith.training import loop
from tunesmith.training.config import load_config
from tunesmith.training.logs import RunLog

# Every step is a checkpoint step, so each epoch ends on one (the case that duplicated rows).
OVERRIDES = ["trainer.max_epochs=2", "trainer.checkpoint_every=1", "trainer.log_every=1", "data.limit=8"]


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (BaseException, so no handler swallows it)."""


def _rows(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_kill_after_epoch_end_validation_duplicates_no_rows(tmp_path, monkeypatch):
    config = load_config(shipped_recipe("debug/lstm"), OVERRIDES)
    loop.train(config, tmp_path / "whole")
    expected = _rows(tmp_path / "whole" / "metrics.csv")

    save = loop.save_checkpoint

    def killed_at_first_epoch_end(payload, path):
        if path.name == "last.ckpt" and payload["metrics"] and payload["epoch"] == 1:
            raise Killed  # validation rows are logged, the epoch's last.ckpt is not written
        save(payload, path)

    monkeypatch.setattr(loop, "save_checkpoint", killed_at_first_epoch_end)
    with pytest.raises(Killed):
        loop.train(config, tmp_path / "killed")
    monkeypatch.setattr(loop, "save_checkpoint", save)
    log = tmp_path / "killed" / "metrics.csv"
    assert sum(",valid," in row for row in _rows(log)) == 2  # loss and accuracy were logged before the kill
    loop.train(config, tmp_path / "killed", resume=True)
    assert _rows(log) == expected


def _log(folder: Path, resume_step: int | None, rows: list[tuple[int, int, str, float]]) -> None:
    log = RunLog(folder, resume_step)
    for step, epoch, split, value in rows:
        log.log(step, epoch, split, {"loss": value})
    log.close()


def test_resume_cuts_rows_after_the_checkpoint_and_a_partial_last_line(tmp_path):
    _log(tmp_path, None, [(1, 0, "train", 3.0), (2, 0, "train", 2.5), (2, 1, "valid", 2.7), (3, 1, "train", 2.0)])
    path = tmp_path / "metrics.csv"
    path.write_text(path.read_text() + "4,1,tra")  # a writer killed mid-line
    _log(tmp_path, 2, [])
    assert _rows(path)[1:] == ["1,0,train,loss,3", "2,0,train,loss,2.5", "2,1,valid,loss,2.7"]


def test_rows_at_the_checkpoint_step_are_replaced_not_repeated(tmp_path):
    _log(tmp_path, None, [(2, 0, "train", 2.5), (2, 1, "valid", 2.7)])
    _log(tmp_path, 2, [(2, 1, "valid", 2.7), (3, 1, "train", 2.0), (4, 1, "train", 1.9)])
    assert _rows(tmp_path / "metrics.csv")[1:] == [
        "2,0,train,loss,2.5", "2,1,valid,loss,2.7", "3,1,train,loss,2", "4,1,train,loss,1.9"]


def test_rows_before_the_checkpoint_step_are_never_dropped(tmp_path):
    # A validation at step 2 (before the checkpoint at 3) stays, whatever the resumed run logs.
    _log(tmp_path, None, [(2, 1, "valid", 2.7), (3, 1, "train", 2.0)])
    _log(tmp_path, 3, [(4, 1, "train", 1.9), (4, 2, "valid", 2.1)])
    assert [r.split(",")[0] for r in _rows(tmp_path / "metrics.csv")[1:]] == ["2", "3", "4", "4"]


def test_a_new_run_starts_an_empty_log(tmp_path):
    _log(tmp_path, None, [(1, 0, "train", 3.0)])
    _log(tmp_path, None, [])
    assert _rows(tmp_path / "metrics.csv") == ["step,epoch,split,name,value"]


def test_resume_survives_nul_bytes_and_garbage_in_the_log(tmp_path):
    _log(tmp_path, None, [(1, 0, "train", 3.0)])
    path = tmp_path / "metrics.csv"
    path.write_bytes(path.read_bytes() + b"\0\0\0\xff\xfe,1,train\n2,0,train,loss,2.5\n" + b"\0" * 64)
    _log(tmp_path, 5, [])
    assert _rows(path)[1:] == ["1,0,train,loss,3", "2,0,train,loss,2.5"]
