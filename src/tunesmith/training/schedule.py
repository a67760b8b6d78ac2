"""Learning-rate schedules, stepped per optimizer step (not per epoch).

The learning rate of optimizer step `step` (0-based: the update about to be made) is a pure function of
(recipe, step, epoch, steps in the run): `lr x lr_decay**epoch x factor(step)`, where `factor` ramps up
linearly over `warmup_steps` (1/w, 2/w, ..., 1) and then stays at 1 (constant) or falls to
`min_lr_ratio` at the run's last step, linearly or along half a cosine. Because it depends on nothing
but the position a checkpoint stores (`Position.step`, `Position.epoch`), a resumed run sets exactly
the rates the uninterrupted run sets; the checkpoint also records the schedule (`schedule_state`) so a
resume that changed it is noticed.
"""

from __future__ import annotations

import math
from typing import Any

from tunesmith.core.errors import UserError
from tunesmith.training.config import OptimConfig


def lr_factor(cfg: OptimConfig, step: int, total_steps: int) -> float:
    """Multiplier of `cfg.lr` for optimizer step `step` (0-based) of a run of `total_steps` steps."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    decay_steps = max(1, total_steps - cfg.warmup_steps - 1)  # the last step reaches min_lr_ratio exactly
    progress = min(1.0, (step - cfg.warmup_steps) / decay_steps)
    shape = 1.0 - progress if cfg.schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * shape


def learning_rate(cfg: OptimConfig, step: int, epoch: int, total_steps: int) -> float:
    """The learning rate of optimizer step `step` in epoch `epoch` (per-epoch `lr_decay` included)."""
    return cfg.lr * cfg.lr_decay**epoch * lr_factor(cfg, step, total_steps)


def lr_ratios(optimizers: dict[str, Any], lr: float) -> dict[str, list[float]]:
    """Each parameter group's learning rate relative to the recipe's `lr`, as the objective built it
    (1 for most; an objective may give a discriminator its own rate): the schedule scales them all."""
    return {name: [group["lr"] / lr for group in optimizer.param_groups] for name, optimizer in optimizers.items()}


def set_learning_rate(optimizers: dict[str, Any], lr: float, ratios: dict[str, list[float]]) -> None:
    """Set every parameter group of every optimizer (both of a GAN) to `lr` times its ratio."""
    for name, optimizer in optimizers.items():
        for group, ratio in zip(optimizer.param_groups, ratios[name], strict=True):
            group["lr"] = lr * ratio


def total_steps(max_steps: int | None, max_epochs: int, steps_per_epoch: int) -> int:
    """Optimizer steps the run will make: `max_steps` when it ends the run first, else every epoch's."""
    planned = max_epochs * steps_per_epoch
    return min(planned, max_steps) if max_steps is not None else planned


def check_schedule(cfg: OptimConfig, total: int) -> None:
    """UserError when the warm-up would not end before the run does (it never reaches the peak rate)."""
    if cfg.warmup_steps >= total:
        raise UserError(f"optim.warmup_steps is {cfg.warmup_steps}, but this run makes only {total} optimizer "
                        "step(s); lower it, or train longer (trainer.max_epochs / trainer.max_steps)")


def schedule_state(cfg: OptimConfig, total: int) -> dict[str, Any]:
    """What a checkpoint records about the schedule (checked on resume by `schedule_changes`)."""
    return {"schedule": cfg.schedule, "lr": cfg.lr, "warmup_steps": cfg.warmup_steps,
            "min_lr_ratio": cfg.min_lr_ratio, "lr_decay": cfg.lr_decay, "total_steps": total}


def schedule_changes(saved: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """'KEY was A, now B' for each schedule setting a resume changed (none for an older checkpoint)."""
    if not saved:
        return []
    return [f"{key} was {saved[key]!r}, now {current[key]!r}" for key in current
            if key in saved and saved[key] != current[key]]
