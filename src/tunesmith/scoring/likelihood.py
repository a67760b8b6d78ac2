"""A checkpoint as a metric: the NLL of pieces under its model, and embeddings of pieces.

- `piece_nll(loaded, score)`: mean negative log-likelihood of one piece in nats per the family's unit
  (token or frame), through the family's `log_likelihood` on the piece as its representation holds it
  (token pieces framed as in training: [BOS] + tokens + [EOS]);
- `make_nll_fn(checkpoint)`: that, as a Score -> float function for `evaluation.compare`;
- `make_embed_fn(checkpoint)`: list[Score] -> (pieces, dim) array, for families that define
  `embed_pieces(representation, scores)` (the MidiNet bar autoencoder).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from symusic import Score

from tunesmith.core.errors import SkipFile, UserError
from tunesmith.models.checkpoint import LoadedModel, load_model


def framed(loaded: LoadedModel, array: np.ndarray) -> np.ndarray:
    """The encoded piece as the family scores it: tokens framed by BOS / EOS, anything else as is."""
    rep = loaded.representation
    if loaded.model.data_kind == "tokens":
        return np.concatenate([[rep.bos_id], np.asarray(array, dtype=np.int64), [rep.eos_id]])
    return array


def piece_nll(loaded: LoadedModel, score: Score) -> float:
    """Mean NLL of one piece (nats per token / frame); NaN for a piece the representation cannot hold."""
    try:
        array = loaded.representation.encode(score)
    except SkipFile:
        return float("nan")
    if not len(array):
        return float("nan")
    log_p, units = loaded.model.log_likelihood(framed(loaded, array))
    return -log_p / max(units, 1)


def likelihood_unit(loaded: LoadedModel) -> str:
    """'nats per token (exact)' and the like, for reports."""
    lik = loaded.model.likelihood
    return f"nats per {lik.unit}, {lik.kind}" if lik else "no likelihood"


class NllScorer:
    """Score -> mean NLL of the piece under a checkpoint's model; `unit` says per what, exact or bound."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded, self.unit = loaded, likelihood_unit(loaded)

    def __call__(self, score: Score) -> float:
        return piece_nll(self.loaded, score)


def make_nll_fn(checkpoint: str) -> NllScorer:
    """NLL of one piece under the checkpoint's model; UserError for a family without a likelihood."""
    loaded = load_model(checkpoint)
    if loaded.model.likelihood is None:
        raise UserError(f"{checkpoint}: the {loaded.name} family defines no likelihood, so it cannot score "
                        "pieces; use a likelihood checkpoint (see `tunesmith models`)")
    return NllScorer(loaded)


def make_embed_fn(checkpoint: str) -> Callable[[list[Score]], np.ndarray]:
    """One embedding row per piece from a model that defines `embed_pieces`."""
    loaded = load_model(checkpoint)
    if not hasattr(loaded.model, "embed_pieces"):
        raise UserError(f"{checkpoint}: a {loaded.name} model gives no embeddings (use a bar-autoencoder)")
    return lambda scores: np.asarray(loaded.model.embed_pieces(loaded.representation, scores))
