"""Torch side of the evaluation seams (`tunesmith.evaluation.hooks`): a checkpoint as a metric.

- `make_nll_fn(checkpoint)`: Score -> mean NLL in nats per token (token models) or per frame (models
  that define `piece_nll(array)` on their representation's encoding, e.g. the piano-roll families);
- `make_embed_fn(checkpoint)`: list[Score] -> (pieces, dim) array, for models that define
  `embed_pieces(representation, scores)` (e.g. the MidiNet bar autoencoder).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from symusic import Score

from tunesmith.core.errors import SkipFile, UserError
from tunesmith.generation.generate import load_model
from tunesmith.training.token_report import model_nll


def make_nll_fn(checkpoint: str) -> Callable[[Score], float]:
    """NLL of one piece under the checkpoint's model; NaN for a piece it cannot encode."""
    loaded = load_model(checkpoint)
    model, rep = loaded.model, loaded.representation
    if not hasattr(model, "stepper") and not hasattr(model, "piece_nll"):
        raise UserError(f"{checkpoint}: a {loaded.checkpoint['model']['name']} model defines no likelihood")

    def nll(score: Score) -> float:
        try:
            array = rep.encode(score)
        except SkipFile:
            return float("nan")
        if not len(array):
            return float("nan")
        if hasattr(model, "stepper"):
            return model_nll(loaded, [array])["nll"]
        return float(model.piece_nll(array))

    return nll


def make_embed_fn(checkpoint: str) -> Callable[[list[Score]], np.ndarray]:
    """One embedding row per piece from a model that defines `embed_pieces`."""
    loaded = load_model(checkpoint)
    if not hasattr(loaded.model, "embed_pieces"):
        raise UserError(f"{checkpoint}: a {loaded.checkpoint['model']['name']} model gives no embeddings")
    return lambda scores: np.asarray(loaded.model.embed_pieces(loaded.representation, scores))
