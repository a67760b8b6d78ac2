"""Learning-rate schedules per optimizer step, gradient accumulation, and an exact resume with both."""

from __future__ import annotations

import math

import pytest
import torch

from tunesmith.core.errors import UserError
from tunesmith.models import make_config, model_class
from tunesmith.models.checkpoint import load_checkpoint
from tunesmith.resources import shipped_recipe
from tunesmith.training import loop
from tunesmith.training.config import OptimConfig, load_config, parse_config
from tunesmith.training.objectives import LikelihoodObjective
from tunesmith.training.schedule import lr_factor

SCHEDULED = ["optim.schedule=cosine", "optim.warmup_steps=3", "optim.min_lr_ratio=0.1", "optim.accumulate=2",
             "trainer.max_epochs=2", "trainer.checkpoint_every=3", "trainer.log_every=1"]


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs."""


def _train_rows(run) -> list[list[str]]:
    return [line.split(",") for line in (run / "metrics.csv").read_text().splitlines()[1:] if ",train," in line]


def test_warmup_then_cosine_and_linear_reach_their_floor():
    cosine = OptimConfig(schedule="cosine", warmup_steps=4, min_lr_ratio=0.1)
    assert [lr_factor(cosine, s, 14) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(cosine, 4, 14) == 1.0 and math.isclose(lr_factor(cosine, 13, 14), 0.1)
    assert math.isclose(lr_factor(cosine, 8, 13), 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    linear = OptimConfig(schedule="linear", warmup_steps=0)
    assert [lr_factor(linear, s, 5) for s in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert [lr_factor(OptimConfig(warmup_steps=2), s, 5) for s in range(4)] == [0.5, 1.0, 1.0, 1.0]


def test_schedule_options_are_validated_in_one_sentence(tmp_path):
    with pytest.raises(UserError, match="lr_decay .* and schedule 'cosine'"):
        parse_config({"optim": {"schedule": "cosine", "lr_decay": 0.9}})
    with pytest.raises(UserError, match="optim.schedule is 'cos'"):
        parse_config({"optim": {"schedule": "cos"}})
    with pytest.raises(UserError, match="optim.accumulate is 0"):
        parse_config({"optim": {"accumulate": 0}})
    config = load_config(shipped_recipe("debug/lstm"), ["optim.warmup_steps=500", "trainer.max_epochs=1"])
    with pytest.raises(UserError, match="warmup_steps is 500, but this run makes only"):
        loop.train(config, tmp_path / "run")


@pytest.mark.parametrize("sizes", [[8], [4, 4], [2, 2, 2, 2], [3, 5]])
def test_accumulated_micro_batches_update_as_one_batch(sizes):
    """Weighted micro-batches (weight = items / items in the step) give the one-batch gradient (compared
    before AdamW's first step, whose sign-like update would amplify float rounding)."""
    cls = model_class("lstm")
    torch.manual_seed(0)
    batch = {"tokens": torch.randint(1, 20, (8, 13))}
    updated = []
    for split in ([8], sizes):
        torch.manual_seed(1)
        model = cls(make_config("lstm", {**cls.debug_config(), "dropout": 0.0}, {"vocab_size": 20, "pad_id": 0}))
        objective = LikelihoodObjective(model, OptimConfig(lr=0.05))
        bounds = [0, *torch.tensor(split).cumsum(0).tolist()]
        parts = [({"tokens": batch["tokens"][a:b]}, (b - a) / 8) for a, b in zip(bounds, bounds[1:], strict=False)]
        logs = objective.train_parts(parts, 0)
        updated.append(([p.grad.clone() for p in model.parameters()], logs["loss"]))
    (whole, loss_whole), (accumulated, loss_accumulated) = updated
    assert math.isclose(loss_whole, loss_accumulated, rel_tol=1e-5)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(whole, accumulated, strict=True))


def test_lr_follows_the_schedule_per_step_and_resume_after_a_kill_is_exact(tmp_path, monkeypatch, one_thread):
    config = load_config(shipped_recipe("debug/lstm"), SCHEDULED)
    loop.train(config, tmp_path / "whole")
    rows = _train_rows(tmp_path / "whole")
    lrs = [float(r[4]) for r in rows if r[3] == "lr"]
    steps = len(lrs)
    assert steps >= 6 and lrs[:3] == pytest.approx([0.01 / 3, 0.02 / 3, 0.01], rel=1e-5)  # warm-up, peak 0.01
    assert lrs[-1] == pytest.approx(0.001, rel=1e-5)  # min_lr_ratio at the last step
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:], strict=False))  # then only down
    save = loop.save_checkpoint

    def killed_after_first_checkpoint(payload, path):
        save(payload, path)
        if payload["step"] == 3:
            raise Killed

    monkeypatch.setattr(loop, "save_checkpoint", killed_after_first_checkpoint)
    with pytest.raises(Killed):
        loop.train(config, tmp_path / "killed")
    monkeypatch.setattr(loop, "save_checkpoint", save)
    assert load_checkpoint(tmp_path / "killed" / "checkpoints" / "last.ckpt")["position"]["batch"] == 6
    loop.train(config, tmp_path / "killed", resume=True)
    a = load_checkpoint(tmp_path / "whole" / "checkpoints" / "last.ckpt")
    b = load_checkpoint(tmp_path / "killed" / "checkpoints" / "last.ckpt")
    assert a["schedule"] == b["schedule"] and a["schedule"]["total_steps"] == steps
    assert all(torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"])
    assert (tmp_path / "whole" / "metrics.csv").read_text() == (tmp_path / "killed" / "metrics.csv").read_text()


def test_gan_family_trains_with_accumulation_and_a_schedule(tmp_path, one_thread):
    """Both optimizers of an adversarial family follow the schedule and step once per accumulated step."""
    overrides = ["optim.accumulate=2", "optim.schedule=linear", "optim.warmup_steps=1", "trainer.max_steps=3",
                 "trainer.log_every=1", "trainer.checkpoint_every=100"]
    run = loop.train(load_config(shipped_recipe("debug/token-gan"), overrides), tmp_path / "gan")
    ckpt = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert ckpt["step"] == 3 and ckpt["position"]["batch"] == 6
    for name in ("generator", "discriminator"):
        state = ckpt["optimizer"][name]
        assert all(int(s["step"]) == 3 for s in state["state"].values())  # one AdamW step per optimizer step
    names = {r[3] for r in _train_rows(run)}
    assert {"d_loss", "g_loss", "lr"} <= names
