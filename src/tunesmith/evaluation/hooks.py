"""Seams for the metrics that need a trained network; evaluation itself never imports torch.

The torch side provides, in `tunesmith.generation.scoring` (lazily imported here):

- `make_nll_fn(checkpoint: str) -> Callable[[Score], float]`: mean negative log-likelihood of one piece
  under a likelihood checkpoint, per token or per frame (nats), as the model's representation defines it;
- `make_embed_fn(checkpoint: str) -> Callable[[list[Score]], np.ndarray]`: one embedding row per piece
  (e.g. the MidiNet autoencoder's latent), for the Frechet distance of `compare.compare_sets`.

Until that module exists the CLI options that need it stop with a clear message.
"""

from __future__ import annotations

from tunesmith.core.errors import UserError
from tunesmith.evaluation.compare import EmbedFn, NllFn


def _scoring_module():
    try:
        from tunesmith.generation import scoring
    except ImportError as error:
        raise UserError(
            "likelihood and embedding metrics need tunesmith.generation.scoring, which this build lacks"
        ) from error
    return scoring


def nll_fn_from_checkpoint(checkpoint: str) -> NllFn:
    """The per-piece NLL function of a likelihood checkpoint (see module docstring)."""
    return _scoring_module().make_nll_fn(checkpoint)


def embed_fn_from_checkpoint(checkpoint: str) -> EmbedFn:
    """The embedding function of an autoencoder checkpoint (see module docstring)."""
    return _scoring_module().make_embed_fn(checkpoint)
