"""YAML recipe -> typed, validated run config (pydantic). Unknown keys are errors.

A recipe has four sections: `data`, `model`, `optim`, `trainer` (see the classes below for every key,
its unit and default). `--set a.b=c` overrides any key; the value is parsed as YAML (`--set optim.lr=1e-3`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError

from tunesmith.core.errors import UserError
from tunesmith.data.config import DataConfig, Strict


class ModelSection(Strict):
    """A registered model family and its Config fields (see `tunesmith models`)."""

    name: str = "lstm"
    config: dict[str, Any] = Field(default_factory=dict)


class OptimConfig(Strict):
    lr: float = 2e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float | None = 1.0  # max global gradient norm; None disables clipping
    batch_size: int = 32
    lr_decay: float = 1.0  # multiply the learning rate by this at the end of each epoch


class TrainerConfig(Strict):
    max_epochs: int = 10
    max_steps: int | None = None  # stop after this many optimizer steps, whatever the epoch
    max_minutes: float | None = None  # stop after this much wall-clock training time (demo budgets)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | mps
    num_threads: int | None = None  # CPU threads; default: 1 for recurrent models (fastest measured here)
    checkpoint_every: int = 200  # optimizer steps between checkpoints (plus one at each epoch end)
    log_every: int = 20  # optimizer steps between training-loss log lines
    valid_batches: int | None = None  # cap on validation batches per evaluation (None: all)
    progress: bool = True


class RunConfig(Strict):
    """The whole recipe. `name` names run folders and shipped checkpoints."""

    name: str = "run"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelSection = Field(default_factory=ModelSection)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b=c` overrides to a nested dict (values parsed as YAML); returns a new dict."""
    out = yaml.safe_load(yaml.safe_dump(raw)) or {}
    for item in overrides:
        if "=" not in item:
            raise UserError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        node = out
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"--set {key}: {part!r} is not a section")
        node[leaf] = yaml.safe_load(value)
    return out


def load_config(path: Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML recipe (or start from defaults when `path` is None) and apply overrides."""
    raw: dict[str, Any] = {}
    if path is not None:
        if not Path(path).is_file():
            raise UserError(f"config file {path} does not exist")
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except yaml.YAMLError as error:
            raise UserError(f"config file {path} is not valid YAML ({error.__class__.__name__})") from None
    return parse_config(apply_overrides(raw, overrides or []))


def parse_config(raw: dict[str, Any]) -> RunConfig:
    """Validate a nested dict as a RunConfig; the first problem becomes one UserError sentence."""
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UserError(f"config key {where}: {first['msg'].lower()}") from None


def dump_config(config: RunConfig, path: Path) -> None:
    """Write the resolved config as YAML (what the run actually used)."""
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
