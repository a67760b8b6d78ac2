"""Start a new run from another checkpoint's weights (`trainer.init_from`, `tunesmith train --init-from`).

One way for every family to fine-tune or grow a trained model:

- every weight the checkpoint holds under the same name and shape is copied;
- a weight whose first axis runs over the vocabulary (token embedding, output layer and its bias), when
  the new recipe's representation has tokens the checkpoint's lacks (e.g. lstm-bach + bar countdown
  tokens), is rebuilt row by token string: a token the old vocabulary holds keeps its row; a new one takes
  the row of the old token of the same kind ("Bar_3" <- "Bar_None", the part before the first "_"), or
  the mean row where there is none. New rows of input embeddings then get Gaussian noise of
  `trainer.init_noise` (default 0.5) times the embedding's spread: rows copied exactly would be nearly
  indistinguishable to the network for hundreds of steps (Adam moves a weight by about the learning rate
  per step, while rows of different tokens lie about 15 apart in lstm-bach);
- a weight the family knows how to widen (`MusicModel.grown_weight`, e.g. MidiNet given a longer
  condition) takes the family's rule;
- a weight the checkpoint lacks (a new head, e.g. audio-vaegan's patch discriminator) keeps its fresh
  value and is named in the log.

A checkpoint of another family, a representation that drops any of the checkpoint's tokens, a weight of
the same name and another shape (other than the vocabulary growth above), or a checkpoint that provides
less than half of the model's weights is a UserError: the recipe's model is not the checkpoint's. A
resumed run takes its weights from its own checkpoint, so `init_from` only acts on a new run (the loop
calls `initialise_from` once, after `start_training`).
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from tunesmith.core.errors import UserError
from tunesmith.models.base import MusicModel
from tunesmith.models.checkpoint import load_checkpoint, resolve_checkpoint
from tunesmith.representations import representation_from_dict

logger = logging.getLogger(__name__)


def row_sources(old_vocab: list[str], new_vocab: list[str]) -> list[int]:
    """For each new token, the old row it starts from (-1: the mean row)."""
    old_ids = {token: i for i, token in enumerate(old_vocab)}
    by_kind: dict[str, int] = {}
    for token, i in old_ids.items():
        by_kind.setdefault(token.split("_")[0], i)
    return [old_ids.get(token, by_kind.get(token.split("_")[0], -1)) for token in new_vocab]


def grown_rows(weight: torch.Tensor, sources: list[int], new: list[bool], noise: float, seed: int) -> torch.Tensor:
    """(old_vocab, ...) -> (len(sources), ...): rows picked by `sources` (-1: the mean row); the rows of
    `new` tokens plus N(0, (noise x the weight's std)^2) when `noise` > 0."""
    index = torch.tensor(sources)
    grown = torch.where((index >= 0).view(-1, *[1] * (weight.dim() - 1)),
                        weight[index.clamp(min=0)], weight.mean(0, keepdim=True))
    rows = torch.tensor(new, dtype=torch.bool)
    if noise > 0 and bool(rows.any()):
        generator = torch.Generator().manual_seed(seed)
        jitter = torch.randn(grown[rows].shape, generator=generator) * noise * weight.float().std()
        grown[rows] += jitter.to(grown.dtype)
    return grown


def initialise_from(model: MusicModel, family: str, vocab: list[str] | None, source: str,
                    noise: float = 0.5, seed: int = 0) -> dict[str, int]:
    """Load checkpoint `source`'s weights into `model` (a `family` model whose representation has token
    strings `vocab`, None for non-token data) as the module docstring says. Returns counts: copied,
    grown (vocabulary rows rebuilt), fresh (kept as initialised)."""
    payload = load_checkpoint(resolve_checkpoint(source))
    theirs = (payload.get("model") or {}).get("name")
    if theirs != family:
        raise UserError(f"init_from: {source} is a {theirs} checkpoint, the recipe trains a {family} model")
    weights, own = payload.get("weights") or {}, model.state_dict()
    rows = _vocabulary_map(payload, vocab, source)
    embeddings = {f"{name}.weight" for name, module in model.named_modules() if isinstance(module, torch.nn.Embedding)}
    loaded, counts = {}, {"copied": 0, "grown": 0, "fresh": 0}
    for name, target in own.items():
        weight = weights.get(name)
        if weight is None:
            counts["fresh"] += 1
            continue
        if weight.shape != target.shape:
            weight = _grow(model, name, weight, target, rows, source, noise if name in embeddings else 0.0, seed)
            counts["grown"] += 1
        else:
            counts["copied"] += 1
        loaded[name] = weight.to(target.dtype)
    if len(loaded) * 2 < len(own):
        raise UserError(f"init_from: {source} does not fit this model (it provides {len(loaded)} of its "
                        f"{len(own)} weights)")
    model.load_state_dict(loaded, strict=False)
    fresh = [name for name in own if name not in loaded]
    logger.info("init_from %s: %d weights copied, %d grown (new vocabulary rows or the family's widening), "
                "%d fresh%s", source,
                counts["copied"], counts["grown"], counts["fresh"], f" (first {fresh[0]})" if fresh else "")
    return counts


def _vocabulary_map(payload: dict[str, Any], vocab: list[str] | None,
                    source: str) -> tuple[list[int], list[bool]] | None:
    """(row sources, is-a-new-token) from the checkpoint's vocabulary to `vocab`, or None when there is
    nothing to grow."""
    if vocab is None or "representation" not in payload:
        return None
    try:
        old = getattr(representation_from_dict(payload["representation"]), "vocab", None)
    except Exception as error:  # a damaged entry: say which file
        raise UserError(f"init_from: {source} has a damaged representation entry ({error})") from None
    if old is None or list(old) == list(vocab):
        return None
    known, dropped = set(old), [token for token in old if token not in set(vocab)]
    if dropped:  # another representation: its token rows would mean something else here
        raise UserError(f"init_from: the recipe's representation lacks {len(dropped)} of the {len(old)} tokens "
                        f"of {source} (first {dropped[0]!r}); only new tokens may be added")
    return row_sources(list(old), list(vocab)), [token not in known for token in vocab]


def _grow(model: MusicModel, name: str, weight: torch.Tensor, target: torch.Tensor,
          rows: tuple[list[int], list[bool]] | None, source: str, noise: float, seed: int) -> torch.Tensor:
    """`weight` regrown over the new vocabulary, or widened by the family's own rule
    (`MusicModel.grown_weight`), or a UserError when neither explains the shape difference."""
    if rows is not None and weight.shape[1:] == target.shape[1:] and target.shape[0] == len(rows[0]):
        return grown_rows(weight, *rows, noise, seed)
    widened = model.grown_weight(name, weight, tuple(target.shape))
    if widened is None or tuple(widened.shape) != tuple(target.shape):
        raise UserError(f"init_from: weight {name} is {tuple(weight.shape)} in {source} and "
                        f"{tuple(target.shape)} in the recipe's model: only new vocabulary tokens or a widening "
                        "the family allows may differ")
    return widened
