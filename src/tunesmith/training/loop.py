"""The training loop, written once for every family: data, model, objective, logs, checkpoints, resume.

Data order is a function of (seed, epoch, rank) alone (`training/loader.py`), the learning rate a function
of the position (`training/schedule.py`), and checkpoints store every RNG state and the batch position
inside the epoch (`training/resume.py`), so a run killed at any point and resumed from its last
checkpoint replays exactly the updates an uninterrupted run makes (same losses, bit for bit on CPU),
with DataLoader workers, gradient accumulation, and under torchrun (`training/distributed.py`) too.

We use a plain loop rather than Lightning (DESIGN.md suggested Lightning): Lightning's mid-epoch resume
is exact only with stateful data loaders, its checkpoints do not load with `weights_only=True`, and its
import costs 7-14 s on this CPU. What we needed from it (progress bar, TensorBoard, atomic checkpoints,
resume, GAN objectives, DDP, mixed precision) is below and in the modules named above.
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
from tunesmith.data.build import PreparedData, prepare_data
from tunesmith.io.atomic import sweep_temp_files
from tunesmith.models import data_dims, make_config, model_class
from tunesmith.models.checkpoint import build_or_explain, resolve_checkpoint, save_checkpoint
from tunesmith.training import distributed
from tunesmith.training.checkpoint import rng_state
from tunesmith.training.config import RunConfig, TrainerConfig, check_device, dump_config, load_config, parse_config
from tunesmith.training.curves import plot_learning_curves
from tunesmith.training.distributed import SINGLE, Cluster
from tunesmith.training.engine import Engine, resolve_compile, resolve_precision
from tunesmith.training.init_from import initialise_from
from tunesmith.training.loader import EpochSampler, epoch_batches, make_loader, valid_batches
from tunesmith.training.logs import NullLog, RunLog
from tunesmith.training.objectives import OBJECTIVES
from tunesmith.training.resume import Position, check_layout, check_same_data, restore_state, resumable
from tunesmith.training.schedule import (
    check_schedule,
    learning_rate,
    lr_ratios,
    schedule_changes,
    schedule_state,
    set_learning_rate,
    total_steps,
)

__all__ = ["Position", "epoch_batches", "evaluate", "pick_device", "train", "train_command"]
logger = logging.getLogger(__name__)


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


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def evaluate(objective: Any, dataset: Dataset, batch_size: int, device: torch.device,
             max_batches: int | None = None, cluster: Cluster = SINGLE) -> dict[str, float]:
    """Mean of each validation metric over the dataset (at most `max_batches` batches), weighted by batch
    size; under torchrun each rank evaluates its share of the batches and the sums are combined."""
    objective.model.eval()
    totals: dict[str, float] = {}
    count = 0
    for indices in valid_batches(len(dataset), batch_size, cluster.rank, cluster.world, max_batches):
        metrics = objective.valid_step(to_device(default_collate([dataset[j] for j in indices]), device))
        for name, value in metrics.items():
            totals[name] = totals.get(name, 0.0) + value * len(indices)
        count += len(indices)
    objective.model.train()
    if cluster.active:
        shares = distributed.gather((totals, count), cluster)
        totals = {k: sum(t.get(k, 0.0) for t, _ in shares) for k in shares[0][0]}
        count = sum(c for _, c in shares)
    return {k: v / max(count, 1) for k, v in totals.items()}


@dataclasses.dataclass
class Run:
    """What one training run holds while it trains."""

    config: RunConfig
    data: PreparedData
    model: torch.nn.Module
    objective: Any
    position: Position
    log: RunLog | NullLog
    run_dir: Path
    device: torch.device
    cluster: Cluster
    sampler: EpochSampler
    total_steps: int
    lr_ratios: dict[str, list[float]]  # each parameter group's rate relative to optim.lr
    waited: float = 0.0  # seconds spent waiting for batches this epoch
    in_step: bool = False  # ranks seen holding the same weights after this process's first step


def train(config: RunConfig, run_dir: Path, resume: bool = False, allow_data_change: bool = False) -> Path:
    """Train `config` into `run_dir` (config.yaml, metrics.csv, tensorboard/, checkpoints/).

    On `resume`, the data must still be what the checkpoint was trained on (its provenance fingerprint:
    source, split, piece ids, a hash of the encoded training data); a change is a UserError unless
    `allow_data_change`, which continues on the new data with a warning. Under torchrun every process
    runs this; rank 0 writes the run folder."""
    device = pick_device(config.trainer.device)
    cluster = distributed.start(device.type)
    try:
        run = _setup(config, run_dir, resume, allow_data_change, distributed.local_device(device, cluster), cluster)
        try:
            _run_epochs(run)
        finally:
            run.log.close()
        if cluster.main:
            plot_learning_curves(run_dir)  # run_dir/learning_curves.png from metrics.csv
        return run_dir
    finally:
        distributed.stop(cluster)


def _setup(config: RunConfig, run_dir: Path, resume: bool, allow_data_change: bool, device: torch.device,
           cluster: Cluster) -> Run:
    """Data, model, objective and (on resume) the checkpoint's state, checked; the run folder on rank 0."""
    tr = config.trainer
    precision = resolve_precision(tr.precision, device)
    restored = resumable(run_dir / "checkpoints" / "last.ckpt", config.model.name, device) if resume else None
    checkpoint = restored.checkpoint if restored else None
    torch.manual_seed(tr.seed)
    cls = model_class(config.model.name)
    if checkpoint is None:  # a wrong model config or init_from is one sentence now, not after minutes of data loading
        model_config = make_config(config.model.name, config.model.config, cls.debug_dims())
        if tr.init_from:
            resolve_checkpoint(tr.init_from)
    else:
        model_config = restored.model.config
    history = cls.piece_history(model_config)  # items that carry the piece so far, or None
    if config.data.end_weight != 1 and not cls.loss_weights:
        raise UserError(f"data.end_weight weights the loss of piece endings; the {config.model.name} family's loss "
                        "does not read weights: leave it at 1")
    _set_threads(config, cls, device, cluster)
    data = prepare_data(config.data, cls.data_kind, restored.representation if restored else None, history)
    distributed.check_same("the encoded training data", data.provenance.get("train_data_blake2b"), cluster)
    if checkpoint:
        check_same_data(checkpoint.get("provenance") or {}, data.provenance, run_dir, allow_data_change)
    model = restored.model if restored else build_or_explain(config.model.name, _model_config(config, data),
                                                             "the recipe's model.config")
    if checkpoint is None:  # a new run: before the optimizer and DDP see the weights
        model.start_training()
        if tr.init_from:
            initialise_from(model, config.model.name, getattr(data.representation, "vocab", None), tr.init_from,
                            tr.init_noise, tr.seed)
    model = model.to(device)
    objective = OBJECTIVES[cls.objective](model, config.optim)
    _set_engine(objective, config, precision, device, cluster)
    ratios = lr_ratios(objective.optimizers, config.optim.lr)  # as built, before a checkpoint's rates load
    sampler = EpochSampler(len(data.train), config.optim.batch_size, tr.seed, cluster.rank, cluster.world)
    steps_per_epoch = math.ceil(sampler.batches_per_epoch() / config.optim.accumulate)
    total = total_steps(tr.max_steps, tr.max_epochs, steps_per_epoch)
    check_schedule(config.optim, total)
    position = Position()
    if checkpoint:
        position = restore_state(checkpoint, objective, restored.path, cluster, tr.seed)
        check_layout(checkpoint.get("layout"), _layout(config, cluster), position, restored.path)
        changed = schedule_changes(checkpoint.get("schedule"), schedule_state(config.optim, total))
        if changed and cluster.main:
            logger.warning("the learning-rate schedule changed since the checkpoint (%s); the resumed run "
                           "follows the new one", "; ".join(changed))
    elif cluster.rank:
        torch.manual_seed(distributed.rank_seed(tr.seed, cluster.rank))  # own dropout masks, same weights
    log: RunLog | NullLog = NullLog()
    if cluster.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        sweep_temp_files(run_dir, recursive=True)  # what a killed checkpoint or log write left behind
        dump_config(config, run_dir / "config.yaml")
        log = RunLog(run_dir, resume_step=position.step if checkpoint else None)
    return Run(config, data, model, objective, position, log, run_dir, device, cluster, sampler, total, ratios)


def _set_engine(objective: Any, config: RunConfig, precision: str, device: torch.device, cluster: Cluster) -> None:
    """Give the objective its engine: precision, DDP under torchrun, torch.compile."""
    if not hasattr(objective, "train_parts"):  # an objective written for one fp32 batch per step
        asked = [what for what, on in (("optim.accumulate", config.optim.accumulate > 1),
                                       ("trainer.precision", config.trainer.precision in ("bf16", "fp16")),
                                       ("trainer.compile", config.trainer.compile is True),
                                       ("torchrun", cluster.active)) if on]
        if asked:
            raise UserError(f"the {type(objective).__name__} objective trains one fp32 batch per step on one "
                            f"process, so {asked[0]} cannot apply to it; leave it at its default")
        return
    compile_model = resolve_compile(config.trainer.compile, device)
    net, no_sync = distributed.wrap(objective.model, cluster, device, compile_model,
                                   partial_updates=len(objective.optimizers) > 1)
    objective.engine = Engine(objective.model, precision, device.type, net, no_sync)
    if compile_model and config.trainer.compile == "auto":
        import torch._dynamo

        torch._dynamo.config.suppress_errors = True  # auto: a family dynamo cannot trace runs eagerly


def _layout(config: RunConfig, cluster: Cluster) -> dict[str, int]:
    return {"processes": cluster.world, "batch_size": config.optim.batch_size,
            "accumulate": config.optim.accumulate}


def _set_threads(config: RunConfig, cls: type, device: torch.device, cluster: Cluster) -> None:
    if device.type != "cpu":
        return
    cores = max(1, (os.cpu_count() or 1) // cluster.local_world)  # processes on this machine share its cores
    torch.set_num_threads(config.trainer.num_threads or getattr(cls, "cpu_threads", None) or cores)


def _model_config(config: RunConfig, data: PreparedData) -> Any:
    """The family's config for a new run: the recipe's keys plus the dims the data sets (vocabulary size,
    bar length), which the recipe may repeat but not contradict."""
    dims = data_dims(data.representation)
    for key, value in config.model.config.items():
        if key in dims and value != dims[key]:
            raise UserError(f"config key model.config.{key} is {value!r}, but the {data.representation.name} "
                            f"data sets it to {dims[key]!r}; leave it out of the recipe")
    return make_config(config.model.name, config.model.config, dims)


def _run_epochs(run: Run) -> None:
    tr, position = run.config.trainer, run.position
    loader = make_loader(run.data.train, run.sampler, tr.workers, pin_memory=run.device.type == "cuda")
    started = time.perf_counter()
    while position.epoch < tr.max_epochs and not _done(run, started):
        n_batches = run.sampler.batches_per_epoch()
        run.sampler.start(position.epoch, position.batch)
        bar = tqdm(total=n_batches, initial=position.batch, desc=f"epoch {position.epoch + 1}/{tr.max_epochs}",
                   disable=not (tr.progress and run.cluster.main), leave=False)
        run.model.train()
        run.model.set_progress(position.epoch / tr.max_epochs)
        batches, run.waited, epoch_started = iter(loader), 0.0, time.perf_counter()
        while position.batch < n_batches and not _done(run, started):
            parts = _next_parts(run, batches, min(run.config.optim.accumulate, n_batches - position.batch))
            metrics = _step(run, parts)
            bar.update(len(parts))
            bar.set_postfix(loss=f"{metrics['loss']:.3f}")
            if position.step % tr.log_every == 0:
                run.log.log(position.step, position.epoch, "train", distributed.mean_metrics(metrics, run.cluster))
            if position.step % tr.checkpoint_every == 0:
                _save(run, run.run_dir / "checkpoints" / "last.ckpt", {})
        bar.close()
        busy = time.perf_counter() - epoch_started
        if position.batch >= n_batches:
            position.epoch, position.batch = position.epoch + 1, 0
        _end_of_epoch(run, f"data wait {run.waited / max(busy, 1e-9):.0%} of {busy:.1f} s")


def _next_parts(run: Run, batches: Any, count: int) -> list[tuple[dict[str, torch.Tensor], float]]:
    """The next `count` micro-batches on the device, weighted by their share of the step's items."""
    t0 = time.perf_counter()
    got = [next(batches) for _ in range(count)]
    run.waited += time.perf_counter() - t0
    sizes = [len(next(iter(batch.values()))) for batch in got]
    return [(to_device(batch, run.device), size / sum(sizes)) for batch, size in zip(got, sizes, strict=True)]


def _step(run: Run, parts: list[tuple[dict[str, torch.Tensor], float]]) -> dict[str, float]:
    """One optimizer step at the schedule's learning rate; advances the position."""
    position, objective = run.position, run.objective
    lr = learning_rate(run.config.optim, position.step, position.epoch, run.total_steps)
    set_learning_rate(objective.optimizers, lr, run.lr_ratios)
    if hasattr(objective, "train_parts"):
        metrics = objective.train_parts(parts, position.step)
    else:  # an objective without accumulation (`_set_engine` allows it for one part only)
        metrics = objective.train_step(parts[0][0], position.step)
    position.step, position.batch = position.step + 1, position.batch + len(parts)
    if run.cluster.active and not run.in_step:  # an objective that bypasses DDP fails now, not at a checkpoint
        distributed.check_in_step(run.model, position.step, run.cluster)
        run.in_step = True
    return {**metrics, "lr": lr}


def _done(run: Run, started: float) -> bool:
    trainer: TrainerConfig = run.config.trainer
    if trainer.max_steps is not None and run.position.step >= trainer.max_steps:
        return True
    if trainer.max_minutes is None:
        return False
    return distributed.any_rank(time.perf_counter() - started > 60 * trainer.max_minutes, run.cluster)


def _end_of_epoch(run: Run, timing: str) -> None:
    t0 = time.perf_counter()
    bs, position = run.config.optim.batch_size, run.position
    metrics = evaluate(run.objective, run.data.valid, bs, run.device, run.config.trainer.valid_batches, run.cluster)
    run.log.log(position.step, position.epoch, "valid", metrics)
    summary = " ".join(f"{k} {v:.4f}" for k, v in metrics.items())
    if run.cluster.main:
        tqdm.write(f"epoch {position.epoch} step {position.step}: valid {summary} "
                   f"({time.perf_counter() - t0:.1f} s; training {timing})")
    folder = run.run_dir / "checkpoints"
    if metrics.get("loss", math.inf) < position.best:
        position.best = metrics["loss"]
        _save(run, folder / "best.ckpt", metrics)
    _save(run, folder / "last.ckpt", metrics)


def _save(run: Run, path: Path, metrics: dict[str, float]) -> None:
    """Rank 0 writes the checkpoint (atomically); every rank contributes its RNG state (a collective)."""
    distributed.check_in_step(run.model, run.position.step, run.cluster)
    rngs = distributed.gather(rng_state(), run.cluster)
    if not run.cluster.main:
        return
    config, position, engine = run.config, run.position, getattr(run.objective, "engine", None)
    payload = {
        "model": {"name": config.model.name, "config": dataclasses.asdict(run.model.config)},
        "representation": run.data.representation.to_dict(),
        "weights": run.model.state_dict(),
        "optimizer": {name: opt.state_dict() for name, opt in run.objective.optimizers.items()},
        "rng": rngs[0],
        "position": dataclasses.asdict(position),
        "step": position.step, "epoch": position.epoch,
        "provenance": run.data.provenance,
        "metrics": metrics,
        "run_config": config.model_dump(mode="json"),
        "layout": _layout(config, run.cluster),
        "schedule": schedule_state(config.optim, run.total_steps),
    }
    if run.cluster.active:
        payload["rng_ranks"] = rngs
    if engine is not None and engine.scalers:
        payload["scaler"] = engine.state_dict()
    save_checkpoint(payload, path)


def train_command(config_path: Path | None, overrides: list[str], out: Path | None, resume: Path | None,
                  allow_data_change: bool = False) -> Path:
    """`tunesmith train`: a new run from a recipe, or `--resume RUN_DIR` from its last checkpoint (whose
    data must be unchanged unless `allow_data_change`). Under torchrun every process needs the same run
    folder (`--out`); a process torchrun restarted after a failure (`--max-restarts`) resumes the run."""
    if allow_data_change and resume is None:
        raise UserError("--allow-data-change only applies with --resume RUN_DIR")
    cluster = distributed.from_env()
    if cluster.active and resume is None and out is None:
        raise UserError("under torchrun give the run folder with --out RUN_DIR, so that every process "
                        "trains the same run")
    if resume is None and out is not None and _restarted() and (out / "checkpoints" / "last.ckpt").exists():
        resume = out  # torchrun restarted the workers: continue from the last checkpoint
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


def _restarted() -> bool:
    """Whether torchrun restarted this worker group after a failure (TORCHELASTIC_RESTART_COUNT >= 1)."""
    return os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") not in ("", "0")
