"""Warm start: train a recipe from another checkpoint's weights, growing its vocabulary rows.

`python -m tunesmith.training.warm_start RECIPE --from CKPT --out RUN_DIR [--set key=value ...]`

Used to give a shipped token model new tokens without training it again from scratch (issue 11, item 2:
`lstm-bach` + bar countdown tokens). The recipe's model must be the checkpoint's, up to the vocabulary:
every weight is copied; a weight whose first axis runs over the old vocabulary (token embedding, output
layer and its bias) is rebuilt over the new one, row by token string: a token the old vocabulary holds
keeps its row; a new one takes the row of the old token of the same kind ("Bar_3" <- "Bar_None", the
part before the first "_"), or the mean row where there is none. In the input embeddings, the new rows
then get Gaussian noise of `--noise` (default 0.5) times the embedding's spread: rows copied exactly
would be nearly indistinguishable to the network for hundreds of steps (Adam moves a weight by about
the learning rate per step, while rows of different tokens lie about 15 apart in lstm-bach), so the new
tokens would carry no information. The run then trains as `tunesmith train` does (the same loop,
checkpoints and logs), and `tunesmith train --resume RUN_DIR` continues it.
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


def row_sources(old_vocab: list[str], new_vocab: list[str]) -> list[int]:
    """For each new token, the old row it starts from (-1: the mean row)."""
    old_ids = {token: i for i, token in enumerate(old_vocab)}
    by_kind: dict[str, int] = {}
    for token, i in old_ids.items():
        by_kind.setdefault(token.split("_")[0], i)
    return [old_ids.get(token, by_kind.get(token.split("_")[0], -1)) for token in new_vocab]


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
            index = torch.tensor(sources)
            grown = torch.where((index >= 0).view(-1, *[1] * (weight.dim() - 1)),
                                weight[index.clamp(min=0)], weight.mean(0, keepdim=True))
            if name in noisy and noise > 0:
                generator = torch.Generator().manual_seed(seed)
                jitter = torch.randn(grown[old_size:].shape, generator=generator) * noise * weight.std()
                grown[old_size:] += jitter.to(grown.dtype)
            weight = grown
        out[name] = weight.clone()
    return out


def warm_start(recipe: Path, source: str, run_dir: Path, overrides: list[str], noise: float = 0.5) -> Path:
    """Train `recipe` into `run_dir` starting from the weights of checkpoint `source` (module docstring)."""
    if (run_dir / "checkpoints" / "last.ckpt").exists():
        raise UserError(f"{run_dir} already holds a run; continue it with tunesmith train --resume {run_dir}")
    config = load_config(recipe, overrides)
    loaded = load_model(source)
    if loaded.checkpoint["model"]["name"] != config.model.name:
        raise UserError(f"{source} is a {loaded.checkpoint['model']['name']} model, the recipe a {config.model.name}")
    device = loop.pick_device(config.trainer.device)
    cluster = distributed.start(device.type)
    try:
        run = loop._setup(config, run_dir, False, False, device, cluster)
        old_vocab, new_vocab = loaded.representation.vocab, run.data.representation.vocab
        embeddings = frozenset(f"{name}.weight" for name, module in run.model.named_modules()
                               if isinstance(module, torch.nn.Embedding))
        weights = grown_weights(loaded.model.state_dict(), run.model.state_dict(), row_sources(old_vocab, new_vocab),
                                len(old_vocab), embeddings, noise, config.trainer.seed)
        run.model.load_state_dict(weights)
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
    parser.add_argument("--noise", type=float, default=0.5, help="new embedding rows: noise x the embedding's std")
    args = parser.parse_args()
    try:
        print(warm_start(args.recipe, args.source, args.out, args.overrides, args.noise))
    except UserError as error:  # bad input: one sentence and exit 2, as the tunesmith command does
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
