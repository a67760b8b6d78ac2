"""From a band model's window logits to notes: thresholds and velocities measured on the training data.

Why not Bernoulli draws per unit (the first band-5): the decoder's onset plane is uncertain about the
exact step of each note (onset F1 about 0.3 on held-out windows), so independent draws at its odds scatter
single-step notes over the roll, while its sustain plane (F1 about 0.65) knows where lines sound. So a
melodic group sounds where its sustain probability is above a threshold, and a note begins where the
sound begins or where the onset probability is above its own threshold (a repeated note); a drum hit is an
onset above threshold. The pieces still differ: the latents are drawn (start mixture, predictor Gaussians).

`DecodingStats` holds what the rule needs, as buffers (saved with the checkpoint), updated from every
training batch by `update` (exponential averages, rate 1 / batches seen, floored at 1 %):
- `thresholds` (5, 2): per group, the onset and sustain probability above which the decoded window has as
  many onset / sounding units as the real one (the k-th largest probability of the batch, k the real count):
  calibrated to each instrument's density instead of 1/2, which under-fills every melodic group;
- `count_scale` (5, 2): per group and plane, the units of real next windows where the group plays over
  the sum of the probabilities decoded from the predicted mean latent (`update_counts`): a predicted
  latent is a blurred mean of the possible next windows, whose sustain probabilities sum to about half
  the real sounding units; the "expected" rule multiplies its counts by this;
- `velocity` (5, 128): mean onset velocity per group and pitch (drums: per instrument, kick louder than
  hi-hat), and `accent` (5, window): the mean onset velocity at each step of the window over the group's
  mean (downbeats louder than off-beats). A note's velocity is their product, so velocity is not constant.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tunesmith.core.constants import N_PITCHES
from tunesmith.models.window_ae import DRUMS, N_GROUPS, PLANES

VELOCITY = 90  # before any data is seen
MIN_RATE = 0.01


class DecodingStats(nn.Module):
    """Per-group decoding thresholds and velocity tables, learned from the training windows."""

    def __init__(self, window: int) -> None:
        super().__init__()
        self.register_buffer("thresholds", torch.full((N_GROUPS, PLANES), 0.5))
        self.register_buffer("velocity", torch.full((N_GROUPS, N_PITCHES), float(VELOCITY)))
        self.register_buffer("accent", torch.ones(N_GROUPS, window))
        self.register_buffer("count_scale", torch.ones(N_GROUPS, PLANES))
        self.register_buffer("count_batches", torch.zeros((), dtype=torch.int64))
        self.register_buffer("batches", torch.zeros((), dtype=torch.int64))

    @torch.no_grad()
    def update(self, probs: Tensor, planes: Tensor, mask: Tensor, frames: Tensor) -> None:
        """One training batch: decoded probabilities and real planes (B, 5, 2, W, 128), mask (B, W),
        velocity frames (B, W, 5, 128) of the same steps."""
        self.batches += 1
        rate = max(1.0 / float(self.batches), MIN_RATE)
        units = mask[:, None, :, None].expand(-1, N_GROUPS, -1, N_PITCHES)  # (B, 5, W, 128)
        for g in range(N_GROUPS):
            for c in range(PLANES):
                real = planes[:, g, c][units[:, g]]
                k = int(real.sum())
                if 0 < k < len(real):  # halfway between the k-th and the (k+1)-th largest probability
                    cut = probs[:, g, c][units[:, g]].topk(k + 1).values[-2:].mean()
                    self.thresholds[g, c] += rate * (cut - self.thresholds[g, c])
        onset = planes[:, :, 0] > 0  # (B, 5, W, 128)
        vel = frames.permute(0, 2, 1, 3) * onset  # (B, 5, W, 128)
        _blend(self.velocity, vel.sum((0, 2)), onset.sum((0, 2)), rate)
        group_mean = vel.sum((0, 2, 3)) / onset.sum((0, 2, 3)).clamp(min=1)  # (5,)
        step_mean = vel.sum((0, 3)) / onset.sum((0, 3)).clamp(min=1)  # (5, W)
        ratio = step_mean / group_mean[:, None].clamp(min=1)
        _blend(self.accent, ratio * onset.sum((0, 3)), onset.sum((0, 3)), rate)

    @torch.no_grad()
    def update_counts(self, probs: Tensor, planes: Tensor, valid: Tensor) -> None:
        """One training batch: probabilities decoded from the predicted mean latents and the real planes
        (B, 5, 2, W, 128) of the next windows; `valid` (B,) marks real next windows. Rate as `update`."""
        self.count_batches += 1
        rate = max(1.0 / float(self.count_batches), MIN_RATE)
        plays = planes[:, :, 1].flatten(2).any(-1) & valid[:, None]  # (B, 5)
        for g in range(N_GROUPS):
            if plays[:, g].any():
                real = planes[plays[:, g], g].sum((0, 2, 3))  # (2,)
                ratio = (real / probs[plays[:, g], g].sum((0, 2, 3)).clamp(min=1e-6)).clamp(0.25, 4.0)
                self.count_scale[g] += rate * (ratio - self.count_scale[g])

    def decode(self, logits: Tensor, rule: str, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """Logits (n, 5, 2, T, 128), T a whole number of windows -> (onset, sustain) bool (n, 5, T, 128),
        where `velocity_rolls` starts a note at an onset and holds it while sustain holds. "threshold":
        the module docstring's rule; "expected": the same with, in each window, group and plane, the
        units of the highest probability, as many as the probabilities sum to (the expected count of
        Bernoulli draws); "sample": onsets drawn at the model's odds, sustain above 1/2 (the first band-5)."""
        probs = torch.sigmoid(logits)
        if rule == "sample":
            return torch.rand(probs[:, :, 0].shape, generator=generator) < probs[:, :, 0], probs[:, :, 1] > 0.5
        if rule == "expected":
            above = expected_units(probs, self.accent.shape[1], self.count_scale)
        else:
            above = probs > self.thresholds.to(probs.dtype)[None, :, :, None, None]  # limits (1, 5, 2, 1, 1)
        onset, sound = above[:, :, 0], above[:, :, 1]
        begins = sound.clone()
        begins[:, :, 1:] &= ~sound[:, :, :-1]
        onset = sound & (onset | begins)
        onset[:, DRUMS] = above[:, DRUMS, 0]
        return onset, sound

    def velocities(self, steps: int) -> Tensor:
        """(5, steps, 128) float velocities of a note starting at each step and pitch, 1..127."""
        w = self.accent.shape[1]
        accent = self.accent.repeat(1, -(-steps // w))[:, :steps]
        return (self.velocity[:, None, :] * accent[:, :, None]).clamp(1, 127)


def expected_units(probs: Tensor, window: int, scale: Tensor) -> Tensor:
    """probs (n, 5, 2, T, 128) -> bool, the same shape: in each window of `window` steps, group and plane,
    the round(sum of probabilities x scale (5, 2)) units of the highest probability."""
    n, groups, planes, steps, pitches = probs.shape
    blocks = probs.reshape(n, groups, planes, steps // window, window * pitches)
    total = blocks.sum(-1, keepdim=True) * scale.to(probs.dtype)[None, :, :, None, None]
    count = total.round().long().clamp(max=window * pitches)
    order = blocks.argsort(dim=-1, descending=True, stable=True)
    rank = torch.empty_like(order).scatter_(-1, order, torch.arange(order.shape[-1]).expand_as(order))
    return (rank < count).reshape(probs.shape)


def _blend(buffer: Tensor, total: Tensor, count: Tensor, rate: float) -> None:
    """Move `buffer` towards total / count by `rate` where count > 0."""
    seen = count > 0
    target = total / count.clamp(min=1)
    buffer[seen] += rate * (target[seen] - buffer[seen])
