"""The training loop, written once for every family: data, model, objective, logs, checkpoints, resume.

Data order is a function of (seed, epoch) alone, and checkpoints store every RNG state and the batch
position inside the epoch, so a run killed at any point and resumed from its last checkpoint replays
exactly the updates an uninterrupted run makes (same losses, bit for bit on CPU).

We use a plain loop rather than Lightning (DESIGN.md suggested Lightning): Lightning's mid-epoch resume
is exact only with stateful data loaders, its checkpoints do not load with `weights_only=True`, and its
import costs 7-14 s on this CPU. What we needed from it (progress bar, TensorBoard, atomic checkpoints,
resume, GAN objectives) is below in a few short functions.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, default_collate
from tqdm import tqdm

from tunesmith.core.errors import UserError
from tunesmith.data.build import PreparedData, data_changes, prepare_data
from tunesmith.io.atomic import sweep_temp_files
from tunesmith.models import data_dims, make_config, model_class
from tunesmith.models.checkpoint import LoadedModel, build_or_explain, load_model, save_checkpoint
from tunesmith.training.checkpoint import rng_state, set_rng_state
from tunesmith.training.config import (
    RunConfig,
    TrainerConfig,
    check_device,
    dump_config,
    load_config,
    parse_config,
)
from tunesmith.training.curves import plot_learning_curves
from tunesmith.training.logs import RunLog
from tunesmith.training.objectives import OBJECTIVES

logger = logging.getLogger(__name__)
RESUME_KEYS = ("optimizer", "rng", "position")  # what a checkpoint needs beyond a model to continue training


def pick_device(name: str) -> torch.device:
    """auto -> CUDA if present, else Apple MPS, else CPU; a device this machine lacks is a UserError."""
    check_device(name)
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def epoch_batches(n_items: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Shuffled batches of item indices, a pure function of (seed, epoch); the last batch may be short."""
    generator = torch.Generator().manual_seed((seed * 100_003 + epoch) % 2**64)  # any recipe seed fits
    order = torch.randperm(n_items, generator=generator).tolist()
    return [order[i : i + batch_size] for i in range(0, n_items, batch_size)]


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


def evaluate(objective: Any, dataset: Dataset, batch_size: int, device: torch.device,
             max_batches: int | None = None) -> dict[str, float]:
    """Mean of each validation metric over the dataset, weighted by batch size."""
    objective.model.eval()
    totals: dict[str, float] = {}
    count = 0
    for i, start in enumerate(range(0, len(dataset), batch_size)):
        if max_batches is not None and i >= max_batches:
            break
        items = [dataset[j] for j in range(start, min(start + batch_size, len(dataset)))]
        metrics = objective.valid_step(to_device(default_collate(items), device))
        for name, value in metrics.items():
            totals[name] = totals.get(name, 0.0) + value * len(items)
        count += len(items)
    objective.model.train()
    return {k: v / max(count, 1) for k, v in totals.items()}


@dataclasses.dataclass
class Position:
    """Where training stands: optimizer steps done, epoch in progress, batches of it done."""

    step: int = 0
    epoch: int = 0
    batch: int = 0
    best: float = math.inf


def train(config: RunConfig, run_dir: Path, resume: bool = False, allow_data_change: bool = False) -> Path:
    """Train `config` into `run_dir` (config.yaml, metrics.csv, tensorboard/, checkpoints/).

    On `resume`, the data must still be what the checkpoint was trained on (its provenance fingerprint:
    source, split, piece ids, a hash of the encoded training data); a change is a UserError unless
    `allow_data_change`, which continues on the new data with a warning."""
    device = pick_device(config.trainer.device)
    restored = resumable(run_dir / "checkpoints" / "last.ckpt", config, device) if resume else None
    checkpoint = restored.checkpoint if restored else None
    torch.manual_seed(config.trainer.seed)
    cls = model_class(config.model.name)
    if checkpoint is None:  # a wrong model config is one sentence now, not after minutes of data loading
        make_config(config.model.name, config.model.config, cls.debug_dims())
    _set_threads(config, cls, device)
    data = prepare_data(config.data, cls.data_kind, restored.representation if restored else None)
    if checkpoint:
        check_same_data(checkpoint.get("provenance") or {}, data.provenance, run_dir, allow_data_change)
    model = restored.model if restored else build_or_explain(config.model.name, _model_config(config, data),
                                                             "the recipe's model.config")
    model = model.to(device)
    objective = OBJECTIVES[cls.objective](model, config.optim)
    position = _restore(checkpoint, objective, restored.path) if checkpoint else Position()
    run_dir.mkdir(parents=True, exist_ok=True)
    sweep_temp_files(run_dir, recursive=True)  # what a killed checkpoint or log write left behind
    dump_config(config, run_dir / "config.yaml")
    log = RunLog(run_dir, resume_step=position.step if checkpoint else None)
    try:
        _run_epochs(config, data, model, objective, position, log, run_dir, device)
    finally:
        log.close()
    plot_learning_curves(run_dir)  # run_dir/learning_curves.png from metrics.csv
    return run_dir


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


def _set_threads(config: RunConfig, cls: type, device: torch.device) -> None:
    if device.type != "cpu":
        return
    threads = config.trainer.num_threads or getattr(cls, "cpu_threads", None) or os.cpu_count() or 1
    torch.set_num_threads(threads)


def _model_config(config: RunConfig, data: PreparedData) -> Any:
    """The family's config for a new run: the recipe's keys plus the dims the data sets (vocabulary size,
    bar length), which the recipe may repeat but not contradict."""
    dims = data_dims(data.representation)
    for key, value in config.model.config.items():
        if key in dims and value != dims[key]:
            raise UserError(f"config key model.config.{key} is {value!r}, but the {data.representation.name} "
                            f"data sets it to {dims[key]!r}; leave it out of the recipe")
    return make_config(config.model.name, config.model.config, dims)


def resumable(path: Path, config: RunConfig, device: torch.device) -> LoadedModel:
    """The run's last checkpoint, checked as `load_model` checks any (config, representation, weight
    names, shapes, finite values), of the family the run's config trains, with its resume state."""
    if not path.is_file():
        raise UserError(f"{path} is not a checkpoint file; move it away to start the run again from scratch")
    restored = load_model(path, device)
    if restored.name != config.model.name:
        raise UserError(f"{path} holds a {restored.name} model, but the run's config.yaml trains "
                        f"{config.model.name}; resume it with its own config or start a new run")
    missing = [key for key in RESUME_KEYS if key not in restored.checkpoint]
    if missing:
        raise UserError(f"{path} has no {missing[0]} state (an inference-only export), so training cannot "
                        "resume from it; start a new run")
    return restored


def _restore(checkpoint: dict[str, Any], objective: Any, path: Path) -> Position:
    """Optimizer, RNG and position from a checkpoint whose weights are already loaded; damage is a UserError."""
    try:
        for name, optimizer in objective.optimizers.items():
            saved = checkpoint["optimizer"][name]
            if len(saved.get("param_groups", [])) != len(optimizer.param_groups):
                raise UserError(f"{path} was saved with {len(saved.get('param_groups', []))} optimizer parameter "
                                f"group(s), this tunesmith makes {len(optimizer.param_groups)} (weight decay only "
                                "on matrices since session 2), so it cannot resume exactly; start a new run")
            optimizer.load_state_dict(saved)
        set_rng_state(checkpoint["rng"])
        return Position(**checkpoint["position"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise UserError(f"{path}: its resume state (optimizer, RNG, position) is damaged "
                        f"({type(error).__name__}: {str(error)[:120]})") from None


def _run_epochs(config: RunConfig, data: PreparedData, model: torch.nn.Module, objective: Any,
                position: Position, log: RunLog, run_dir: Path, device: torch.device) -> None:
    tr, bs = config.trainer, config.optim.batch_size
    started = time.perf_counter()
    while position.epoch < tr.max_epochs and not _done(position, tr, started):
        batches = epoch_batches(len(data.train), bs, tr.seed, position.epoch)
        bar = tqdm(total=len(batches), initial=position.batch, desc=f"epoch {position.epoch + 1}/{tr.max_epochs}",
                   disable=not tr.progress, leave=False)
        model.train()
        model.set_progress(position.epoch / tr.max_epochs)
        while position.batch < len(batches) and not _done(position, tr, started):
            batch = to_device(default_collate([data.train[i] for i in batches[position.batch]]), device)
            metrics = objective.train_step(batch, position.step)
            position.step, position.batch = position.step + 1, position.batch + 1
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['loss']:.3f}")
            if position.step % tr.log_every == 0:
                log.log(position.step, position.epoch, "train", metrics)
            if position.step % tr.checkpoint_every == 0:
                _save(run_dir / "checkpoints" / "last.ckpt", config, data, model, objective, position, {})
        bar.close()
        if position.batch >= len(batches):
            position.epoch, position.batch = position.epoch + 1, 0
            _decay_lr(objective, config.optim.lr_decay)
        _end_of_epoch(config, data, model, objective, position, log, run_dir, device)


def _done(position: Position, trainer: TrainerConfig, started: float) -> bool:
    if trainer.max_minutes is not None and time.perf_counter() - started > 60 * trainer.max_minutes:
        return True
    return trainer.max_steps is not None and position.step >= trainer.max_steps


def _decay_lr(objective: Any, factor: float) -> None:
    for optimizer in objective.optimizers.values():
        for group in optimizer.param_groups:
            group["lr"] *= factor


def _end_of_epoch(config: RunConfig, data: PreparedData, model: torch.nn.Module, objective: Any,
                  position: Position, log: RunLog, run_dir: Path, device: torch.device) -> None:
    t0 = time.perf_counter()
    metrics = evaluate(objective, data.valid, config.optim.batch_size, device, config.trainer.valid_batches)
    log.log(position.step, position.epoch, "valid", metrics)
    summary = " ".join(f"{k} {v:.4f}" for k, v in metrics.items())
    tqdm.write(f"epoch {position.epoch} step {position.step}: valid {summary} ({time.perf_counter() - t0:.1f} s)")
    folder = run_dir / "checkpoints"
    if metrics.get("loss", math.inf) < position.best:
        position.best = metrics["loss"]
        _save(folder / "best.ckpt", config, data, model, objective, position, metrics)
    _save(folder / "last.ckpt", config, data, model, objective, position, metrics)


def _save(path: Path, config: RunConfig, data: PreparedData, model: torch.nn.Module, objective: Any,
          position: Position, metrics: dict[str, float]) -> None:
    save_checkpoint({
        "model": {"name": config.model.name, "config": dataclasses.asdict(model.config)},
        "representation": data.representation.to_dict(),
        "weights": model.state_dict(),
        "optimizer": {name: opt.state_dict() for name, opt in objective.optimizers.items()},
        "rng": rng_state(),
        "position": dataclasses.asdict(position),
        "step": position.step, "epoch": position.epoch,
        "provenance": data.provenance,
        "metrics": metrics,
        "run_config": config.model_dump(mode="json"),
    }, path)


def train_command(config_path: Path | None, overrides: list[str], out: Path | None, resume: Path | None,
                  allow_data_change: bool = False) -> Path:
    """`tunesmith train`: a new run from a recipe, or `--resume RUN_DIR` from its last checkpoint (whose
    data must be unchanged unless `allow_data_change`)."""
    if allow_data_change and resume is None:
        raise UserError("--allow-data-change only applies with --resume RUN_DIR")
    if resume is not None:
        if not (resume / "config.yaml").is_file():
            raise UserError(f"{resume} is not a run folder (no config.yaml)")
        config = load_config(resume / "config.yaml", overrides)
        if not (resume / "checkpoints" / "last.ckpt").exists():  # killed before its first checkpoint
            return train(config, resume, resume=False)
        return train(config, resume, resume=True, allow_data_change=allow_data_change)
    config = load_config(config_path, overrides) if config_path else parse_config({})
    run_dir = out or Path("runs") / f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if (run_dir / "checkpoints" / "last.ckpt").exists():
        raise UserError(f"{run_dir} already holds a run; use --resume {run_dir} to continue it")
    return train(config, run_dir)
