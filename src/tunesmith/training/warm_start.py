"""Warm start, kept as an alias: `python -m tunesmith.training.warm_start RECIPE --from CKPT --out RUN_DIR`
is `tunesmith train RECIPE --init-from CKPT --out RUN_DIR` (`training/init_from.py` holds the rules:
same-name weights copied, vocabulary rows grown by token string, new input-embedding rows jittered).
`grown_weights` is the state-dict form of those rules, for callers that build the new model themselves.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from tunesmith.core.errors import UserError
from tunesmith.training.init_from import grown_rows, row_sources  # noqa: F401 (re-exported)


def grown_weights(old: dict[str, torch.Tensor], new: dict[str, torch.Tensor], sources: list[int],
                  old_size: int, noisy: frozenset[str] = frozenset(), noise: float = 0.0,
                  seed: int = 0) -> dict[str, torch.Tensor]:
    """`new`'s state dict filled from `old`: same shapes copied; (old_size, ...) -> (len(sources), ...) rows
    regrown by `sources`, the rows of new tokens (index >= old_size) of the weights named in `noisy` plus
    N(0, (noise x the weight's std)^2). Any other difference is a UserError (the recipe's model is not
    the checkpoint's)."""
    out = {}
    for name, target in new.items():
        weight = old.get(name)
        if weight is None:
            raise UserError(f"the checkpoint has no weight {name}: the recipe's model differs from it")
        if weight.shape != target.shape:
            if weight.shape[0] != old_size or weight.shape[1:] != target.shape[1:] or target.shape[0] != len(sources):
                raise UserError(f"weight {name} is {tuple(weight.shape)} in the checkpoint and "
                                f"{tuple(target.shape)} in the recipe's model: only the vocabulary may differ")
            new_rows = [i >= old_size for i in range(len(sources))]
            weight = grown_rows(weight, sources, new_rows, noise if name in noisy else 0.0, seed)
        out[name] = weight.clone()
    return out


def warm_start(recipe: Path, source: str, run_dir: Path, overrides: list[str], noise: float = 0.5) -> Path:
    """`tunesmith train RECIPE --init-from SOURCE --out RUN_DIR --set trainer.init_noise=NOISE`."""
    from tunesmith.training.loop import train_command

    return train_command(recipe, [*overrides, f"trainer.init_from={source}", f"trainer.init_noise={noise}"],
                         run_dir, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--from", dest="source", required=True, help="checkpoint file, run folder or shipped name")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="key=value recipe override")
    parser.add_argument("--noise", type=float, default=0.5, help="new embedding rows: noise x the embedding's std")
    args = parser.parse_args()
    try:
        print(warm_start(args.recipe, args.source, args.out, args.overrides, args.noise))
    except UserError as error:  # bad input: one sentence and exit 2, as the tunesmith command does
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
