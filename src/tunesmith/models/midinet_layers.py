"""Building blocks of the MidiNet GAN (`midinet.py`) and the bar autoencoder (`bar_autoencoder.py`).

Every tensor here is laid out `(batch, time, channels)`: a bar is `(batch, 16, 128)` (steps x pitches),
so the pitch axis is the channel axis and every layer works on the time axis only. MidiNet's 2-D
layers all have a kernel that spans either the whole pitch axis or one pitch, so nothing is lost:

- a conv with kernel (1, 128) over a (16, 128) bar is a per-step `Linear(128, C)` (`nn.Linear`);
- a conv with kernel (2, 1), stride 2 over time is `PairDown`: join each pair of steps, then `Linear`;
- a transposed conv with kernel (2, 1), stride 2 (the generator's upsampling) is `PairUp`: one
  `Linear(C_in, 2 C_out)` per step, reshaped into two steps. This is the same function as
  `ConvTranspose1d(C_in, C_out, 2, stride=2)` (tests/test_midinet.py checks it weight for weight),
  but runs as one matrix product: transposed convolutions fall on a slow path on this CPU
  (81 % of the seed's step time; `benchmarks/midinet.py` prints both);
- a 1x1 convolution (SAGAN's query, key and value maps) is a per-position `Linear`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class PairUp(nn.Module):
    """(B, T, C_in) -> (B, 2T, C_out): each step becomes two, as a kernel-2 stride-2 transposed conv."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.linear = nn.Linear(in_channels, 2 * out_channels)

    def forward(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        # Row-major (B, T, 2, C_out) is already (B, 2T, C_out) with step 2t+k from offset k.
        return self.linear(x).reshape(b, 2 * t, self.out_channels)


class PairDown(nn.Module):
    """(B, T, C_in) -> (B, T/2, C_out): each pair of steps becomes one, as a kernel-2 stride-2 conv."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(2 * in_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        b, t, c = x.shape
        return self.linear(x.reshape(b, t // 2, 2 * c))


class StepNorm(nn.Module):
    """BatchNorm over channels of a (B, T, C) map, statistics over batch and time (as BatchNorm2d
    over MidiNet's (B, C, T, 1) maps)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(channels)

    def forward(self, x: Tensor) -> Tensor:
        b, t, c = x.shape
        return self.norm(x.reshape(b * t, c)).reshape(b, t, c)


class SelfAttention(nn.Module):
    """SAGAN self-attention over the time steps of a (B, T, C) map; returns `gamma * attended + x`.

    Query and key are 1x1 convolutions C -> max(C // 8, 1), the value a 1x1 convolution C -> C;
    A = softmax(Q K^T) over the attended steps. `gamma` is a learnable scalar that starts at 0, so a
    fresh layer is the identity and the network learns how much non-local evidence to mix in.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        inner = max(channels // 8, 1)
        self.query = nn.Linear(channels, inner)
        self.key = nn.Linear(channels, inner)
        self.value = nn.Linear(channels, channels)
        self.gamma = nn.Parameter(torch.zeros(()))

    def attention(self, x: Tensor) -> Tensor:
        """(B, T, C) -> attention weights (B, T, T); row i sums to 1 over the attended steps."""
        return torch.softmax(self.query(x) @ self.key(x).transpose(1, 2), dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        return self.gamma * (self.attention(x) @ self.value(x)) + x


def broadcast_cat(x: Tensor, *conditions: Tensor | None) -> Tensor:
    """Concatenate along channels: onto a (B, T, C) map, (B, T, D) maps and (B, D) vectors (repeated
    over T); onto a (B, C) vector, (B, D) vectors. None entries are skipped."""
    parts = [x]
    for cond in conditions:
        if cond is None:
            continue
        repeat = x.dim() == 3 and cond.dim() == 2
        parts.append(cond[:, None, :].expand(-1, x.shape[1], -1) if repeat else cond)
    return torch.cat(parts, dim=-1)


class _HardOneHot(torch.autograd.Function):
    """Forward: exact one-hot of the argmax; backward: the gradient passes to the input unchanged."""

    @staticmethod
    def forward(ctx, probs: Tensor) -> Tensor:
        return torch.zeros_like(probs).scatter_(-1, probs.argmax(-1, keepdim=True), 1.0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad


def straight_through_onehot(logits: Tensor, tau: float = 1.0) -> Tensor:
    """(..., K) logits -> exact hard one-hot of the argmax in the forward pass, softmax(logits / tau)'s
    gradient in the backward pass (straight-through), so a discriminator's gradient reaches the
    logits; the seed's plain argmax has none. (`hard + soft - soft.detach()` would leave rounding
    errors of 1e-7 in the "one-hot" values the discriminator sees.)"""
    return _HardOneHot.apply(torch.softmax(logits / tau, dim=-1))
