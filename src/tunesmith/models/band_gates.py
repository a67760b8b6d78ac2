"""Presence gates of the band chain (`band.py`): coins on the piece-so-far summary (`context_features`) that
decide whether a group plays in the next window, and the draw kept where a coin says "plays".

- The piano gate (`BandConfig.gate`, session 7): its head is `LatentPredictors.gate`, piano's predictor reads its
  coin, and its odds can be raised (`PianoGate.odds`) so that continuations keep the piano of their primer.
- Group gates (`BandConfig.group_gates`, session 10): one head for the named groups other than piano
  (`GroupGates`), trained by the same BCE on the same summary, coins at the odds it learned. Their predictors do
  not read the coin (they are trained without it): where it says "plays" a group's draw is redrawn until its
  window sounds, where it says "silent" the group gets an empty window's latent. Why: without a gate, whether a
  part plays is whether its drawn latent decodes to notes, and the chain's own draws drift. Measured on band-5's
  prior samples, strings entered after a silent window in 45 % of windows (real 4 %) and sounded in 93 % of the
  bars (real 79 %); from real histories, one step ahead, the same predictor entered in 8 %. Gating guitar as well
  was tried and left: its predictor, trained without a coin, gives no sounding draw where the coin says it enters,
  so guitar only stopped and thinned out over 16 windows (onsets per step 0.03 in the last 4, real 0.24).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from tunesmith.models.layers import SkipMLP, gaussian_draw


@dataclass
class PianoGate:
    """Generation with a piano gate: its odds multiplied by `odds` (> 1 plays piano more), `draws` candidate
    latents per window, and `sounds`: latents (N, D) -> bool (N,), whether piano's decoded window sounds."""

    odds: float
    draws: int
    sounds: Callable[[Tensor], Tensor]


@dataclass
class GroupGateDraws:
    """Generation with group gates: `draws` candidate latents per window, and `sounds`: (latents (N, D), group) ->
    bool (N,), whether that group's decoded window sounds."""

    draws: int
    sounds: Callable[[Tensor, int], Tensor]


class GroupGates(nn.Module):
    """One head on the piece-so-far summary (B, n_context) -> a "plays at t+1" logit per gated group."""

    def __init__(self, groups: tuple[int, ...], n_context: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.groups = tuple(groups)
        self.head = SkipMLP(n_context, len(self.groups), max(hidden // 8, 1), 1, dropout)

    def loss(self, history: Tensor, plays: Tensor, valid: Tensor) -> Tensor:
        """BCE (nats per pair and gated group) of the logits from `history` against the groups sounding at t+1
        (`plays` (B, 5) bool), over the `valid` (B,) items."""
        bce = nn.functional.binary_cross_entropy_with_logits(self.head(history), plays[:, self.groups].float(),
                                                             reduction="none")
        return (bce * valid.float()[:, None]).sum() / (valid.float().sum().clamp(min=1) * len(self.groups))

    def coin(self, history: Tensor, group: int, generator: torch.Generator | None) -> Tensor:
        """(B,) bool: whether gated `group` plays at t+1, a coin at its head's probability given `history`."""
        p = torch.sigmoid(self.head(history)[:, self.groups.index(group)])
        return torch.rand(p.shape, generator=generator, device=p.device) < p


def kept_draw(mean: Tensor, logvar: Tensor, temperature: float, generator: torch.Generator | None, coin: Tensor,
              sounds: Callable[[Tensor], Tensor], draws: int, silent: Tensor) -> Tensor:
    """A group's latent (B, D) from its Gaussian (mean, log-variance (B, D)) and `coin` (B,) bool: where the coin
    says "plays", drawn until a draw's window sounds (`sounds`: (N, D) -> (N,) bool), at most `draws` times (the
    last is kept when none does); elsewhere `silent` (D,), the encoding of an empty window."""
    z = gaussian_draw(mean, logvar, temperature, generator)
    pending = coin.clone()  # items whose kept draw is not yet known to sound
    for _ in range(draws - 1):  # decoding is the cost: only the pending items are redrawn and checked
        if not pending.any():
            break
        pending[pending.clone()] = ~sounds(z[pending])
        z = torch.where(pending[:, None], gaussian_draw(mean, logvar, temperature, generator), z)
    return torch.where(coin[:, None], z, silent.to(z.dtype))
