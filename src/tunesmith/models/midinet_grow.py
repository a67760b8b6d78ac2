"""Grow a trained MidiNet into one with a wider generator condition (e.g. `history: true` added to a
profile model), keeping what it learned: the new model starts as exactly the old function.

`python -m tunesmith.models.midinet_grow RECIPE --from CKPT --out RUN_DIR [--set key=value ...]`

The generator concatenates its condition vector last, after its own channels and the conditioner's
maps (`midinet_nets.Generator`), and the new condition parts come after the old ones, so every weight
that grows only gains trailing rows or columns. Those are zeros: a grown weight (out, in) takes the old
one in its top-left corner, so the new inputs contribute nothing and the new channels (the widened
attention values and the condition passed through) reach no output until training moves them. The
run then trains as `tunesmith train` does (`tunesmith train --resume RUN_DIR` continues it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from tunesmith.core.errors import UserError
from tunesmith.models.checkpoint import load_model
from tunesmith.training import distributed, loop
from tunesmith.training.config import load_config
from tunesmith.training.curves import plot_learning_curves


def grown_state(old: dict[str, torch.Tensor], new: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`new`'s state dict filled from `old`: equal shapes copied; a weight that is larger on every axis
    gets the old one in its leading corner and zeros elsewhere. Anything else is a UserError."""
    out = {}
    for name, target in new.items():
        weight = old.get(name)
        if weight is None:
            raise UserError(f"the checkpoint has no weight {name}: the recipe's model is not a grown copy of it")
        if weight.shape != target.shape:
            if weight.dim() != target.dim() or any(o > n for o, n in zip(weight.shape, target.shape, strict=True)):
                raise UserError(f"weight {name} is {tuple(weight.shape)} in the checkpoint and "
                                f"{tuple(target.shape)} in the recipe's model: it can only grow")
            grown = torch.zeros_like(target)
            grown[tuple(slice(0, n) for n in weight.shape)] = weight
            weight = grown
        out[name] = weight.clone()
    return out


def grow(recipe: Path, source: str, run_dir: Path, overrides: list[str]) -> Path:
    """Train `recipe` into `run_dir` from checkpoint `source`'s weights, grown (module docstring)."""
    if (run_dir / "checkpoints" / "last.ckpt").exists():
        raise UserError(f"{run_dir} already holds a run; continue it with tunesmith train --resume {run_dir}")
    config = load_config(recipe, overrides)
    loaded = load_model(source)
    if loaded.checkpoint["model"]["name"] != "midinet" or config.model.name != "midinet":
        raise UserError("midinet_grow grows a midinet checkpoint into a midinet recipe")
    device = loop.pick_device(config.trainer.device)
    cluster = distributed.start(device.type)
    try:
        run = loop._setup(config, run_dir, False, False, device, cluster)
        run.model.load_state_dict(grown_state(loaded.model.state_dict(), run.model.state_dict()))
        try:
            loop._run_epochs(run)
        finally:
            run.log.close()
        plot_learning_curves(run_dir)
        return run_dir
    finally:
        distributed.stop(cluster)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--from", dest="source", required=True, help="checkpoint file, run folder or shipped name")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="key=value recipe override")
    args = parser.parse_args()
    try:
        print(grow(args.recipe, args.source, args.out, args.overrides))
    except UserError as error:  # bad input: one sentence and exit 2, as the tunesmith command does
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
