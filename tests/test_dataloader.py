"""Batches through a DataLoader: an order that is a pure function of (seed, epoch, rank), worker
processes that change nothing, and an exact mid-epoch resume with workers."""

from __future__ import annotations

import pytest
import torch

from tunesmith.models.checkpoint import load_checkpoint
from tunesmith.resources import shipped_recipe
from tunesmith.training import loop
from tunesmith.training.config import load_config
from tunesmith.training.loader import EpochSampler, epoch_batches, epoch_order

OVERRIDES = ["trainer.max_epochs=2", "trainer.checkpoint_every=3", "trainer.log_every=1"]


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs."""


def test_order_is_a_pure_function_of_seed_epoch_and_rank():
    generator = torch.Generator().manual_seed(7 * 100_003 + 2)
    assert epoch_order(10, 7, 2) == torch.randperm(10, generator=generator).tolist()  # one process: as before
    assert epoch_order(10, 7, 2) == epoch_order(10, 7, 2) != epoch_order(10, 7, 3)
    shards = [epoch_order(10, 7, 2, rank, 3) for rank in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]  # padded by wrapping: every rank gets as many items
    assert sorted(set(sum(shards, []))) == list(range(10))
    # two processes with batch 2 see, at each step, the items one process sees with batch 4
    one = epoch_batches(10, 4, 7, 2)
    two = [epoch_batches(10, 2, 7, 2, rank, 2) for rank in range(2)]
    assert all(sorted(one[k]) == sorted(two[0][k] + two[1][k]) for k in range(len(one)))


def test_sampler_starts_mid_epoch_where_it_is_told():
    sampler = EpochSampler(20, 3, seed=1)
    sampler.start(epoch=1, batch=4)
    assert list(sampler) == epoch_batches(20, 3, 1, 1)[4:] and len(sampler) == 7 - 4
    assert sampler.state_dict() == {"epoch": 1, "batch": 4}


def test_workers_change_nothing_and_a_mid_epoch_kill_resumes_exactly(tmp_path, monkeypatch, one_thread):
    recipe = shipped_recipe("debug/lstm")
    loop.train(load_config(recipe, OVERRIDES), tmp_path / "in-process")
    config = load_config(recipe, [*OVERRIDES, "trainer.workers=2"])
    save = loop.save_checkpoint

    def killed_mid_epoch(payload, path):
        save(payload, path)
        if payload["step"] == 3:
            raise Killed  # workers have prefetched batches beyond the checkpoint's position

    monkeypatch.setattr(loop, "save_checkpoint", killed_mid_epoch)
    with pytest.raises(Killed):
        loop.train(config, tmp_path / "workers")
    monkeypatch.setattr(loop, "save_checkpoint", save)
    position = load_checkpoint(tmp_path / "workers" / "checkpoints" / "last.ckpt")["position"]
    assert position["epoch"] == 0 and position["batch"] == 3  # mid-epoch
    loop.train(config, tmp_path / "workers", resume=True)
    a = load_checkpoint(tmp_path / "in-process" / "checkpoints" / "last.ckpt")
    b = load_checkpoint(tmp_path / "workers" / "checkpoints" / "last.ckpt")
    assert a["step"] == b["step"] > 3
    assert all(torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"])
    assert (tmp_path / "in-process" / "metrics.csv").read_text() == (tmp_path / "workers" / "metrics.csv").read_text()
