"""Resuming a run: the checkpoint's checks, and the state (optimizers, scalers, RNG, position) it restores.

A checkpoint written by the loop holds, beyond the model: every optimizer's state, the GradScalers'
(fp16), the RNG state of every rank, the `Position` (optimizer steps, epoch, micro-batches of the epoch
consumed by each rank, best validation loss), the batch layout (processes, batch size, accumulation)
and the learning-rate schedule. Mid-epoch, the position only means the same batches under the same
layout, so a resume with another layout is refused there (an epoch-end checkpoint resumes under any).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any

import torch

from tunesmith.core.errors import UserError
from tunesmith.data.build import data_changes
from tunesmith.models.checkpoint import LoadedModel, load_model
from tunesmith.training.checkpoint import set_rng_state
from tunesmith.training.distributed import Cluster, rank_seed

logger = logging.getLogger(__name__)
RESUME_KEYS = ("optimizer", "rng", "position")  # what a checkpoint needs beyond a model to continue training


@dataclasses.dataclass
class Position:
    """Where training stands: optimizer steps done, epoch in progress, micro-batches of it done (per rank)."""

    step: int = 0
    epoch: int = 0
    batch: int = 0
    best: float = math.inf


def resumable(path: Path, model_name: str, device: torch.device) -> LoadedModel:
    """The run's last checkpoint, checked as `load_model` checks any (config, representation, weight
    names, shapes, finite values), of the family the run's config trains, with its resume state."""
    if not path.is_file():
        raise UserError(f"{path} is not a checkpoint file; move it away to start the run again from scratch")
    restored = load_model(path, device)
    if restored.name != model_name:
        raise UserError(f"{path} holds a {restored.name} model, but the run's config.yaml trains "
                        f"{model_name}; resume it with its own config or start a new run")
    missing = [key for key in RESUME_KEYS if key not in restored.checkpoint]
    if missing:
        raise UserError(f"{path} has no {missing[0]} state (an inference-only export), so training cannot "
                        "resume from it; start a new run")
    return restored


def check_same_data(saved: dict[str, Any], current: dict[str, Any], run_dir: Path, allow_change: bool) -> None:
    """UserError (or, with `allow_change`, a warning) when the data differs from the checkpoint's provenance."""
    changes = data_changes(saved, current)
    if not changes:
        return
    what = "; ".join(changes[:2]) + (f" (and {len(changes) - 2} more)" if len(changes) > 2 else "")
    if not allow_change:
        raise UserError(f"the training data of {run_dir} changed since its last checkpoint ({what}); add "
                        "--allow-data-change to continue on the new data, or start a new run")
    logger.warning("the training data changed since the last checkpoint (%s); continuing on the new data", what)


def check_layout(saved: dict[str, Any] | None, current: dict[str, int], position: Position, path: Path) -> None:
    """UserError when a mid-epoch checkpoint is resumed with other processes / batch size / accumulation."""
    if not saved or position.batch == 0:
        return
    changed = [f"{key} {saved[key]} (now {current[key]})" for key in current
               if key in saved and saved[key] != current[key]]
    if changed:
        raise UserError(f"{path} was saved mid-epoch with {', '.join(changed)}; resume it with the same "
                        "processes and batch settings (a checkpoint at an epoch's end resumes with any)")


def restore_state(checkpoint: dict[str, Any], objective: Any, path: Path, cluster: Cluster, seed: int) -> Position:
    """Optimizers, scalers, this rank's RNG and the position from a checkpoint whose weights are already
    loaded; damage is a UserError."""
    try:
        for name, optimizer in objective.optimizers.items():
            saved = checkpoint["optimizer"][name]
            if len(saved.get("param_groups", [])) != len(optimizer.param_groups):
                raise UserError(f"{path} was saved with {len(saved.get('param_groups', []))} optimizer parameter "
                                f"group(s), this tunesmith makes {len(optimizer.param_groups)} (weight decay only "
                                "on matrices since session 2), so it cannot resume exactly; start a new run")
            optimizer.load_state_dict(saved)
        engine = getattr(objective, "engine", None)
        if engine is not None:
            engine.load_state_dict(checkpoint.get("scaler") or {})
        position = Position(**checkpoint["position"])
        ranks = checkpoint.get("rng_ranks")
        if ranks and len(ranks) == cluster.world:
            set_rng_state(ranks[cluster.rank])
        else:  # saved by another number of processes (at an epoch's end: `check_layout`)
            set_rng_state(checkpoint["rng"])
            if cluster.rank:
                torch.manual_seed(rank_seed(seed + position.step, cluster.rank))
        return position
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise UserError(f"{path}: its resume state (optimizer, RNG, position) is damaged "
                        f"({type(error).__name__}: {str(error)[:120]})") from None
