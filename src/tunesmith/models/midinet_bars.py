"""MidiNet's bars as tensors: one-hot bars <-> one pitch per step, and the statistics its validation
compares (pitch-class histogram, rest rate, change rate). A bar is (T steps, 128 pitches); an all-zero
step is a rest."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F  # noqa: N812

from tunesmith.core.errors import UserError

N_PITCHES = 128


def last_filled_bar(bars: Tensor) -> Tensor:
    """The last bar (T, 128) of `bars` (n, T, 128) that holds a note; UserError when none does."""
    filled = torch.nonzero(bars.flatten(1).any(1)).flatten()
    if not len(filled):
        raise UserError("the primer has no melody notes to continue")
    return bars[int(filled[-1])]


def bars_to_pitches(bars: Tensor) -> Tensor:
    """(B, T, 128) one-hot bars -> (B, T) int64 pitch per step, -1 for a rest (an all-zero row)."""
    return torch.where(bars.amax(-1) > 0, bars.argmax(-1), torch.full_like(bars.argmax(-1), -1))


def pitches_to_bars(pitches: Tensor) -> Tensor:
    """Inverse of `bars_to_pitches`: (B, T) pitches (-1 = rest) -> (B, T, 128) float one-hot."""
    onehot = F.one_hot((pitches.long() + 1).clamp(min=0), N_PITCHES + 1).float()
    return onehot[..., 1:]


def bar_statistics(bars: Tensor) -> dict[str, np.ndarray | float]:
    """Pitch-class histogram (12,), rest rate and change rate of a stack of bars (B, T, 128)."""
    pitches = bars_to_pitches(bars)
    counts = bars.sum(dim=(0, 1)).double().cpu().numpy()  # (128,) steps per pitch
    folded = np.bincount(np.arange(N_PITCHES) % 12, weights=counts, minlength=12)
    pch = folded / folded.sum() if folded.sum() > 0 else np.full(12, 1 / 12)
    changes = (pitches[:, 1:] != pitches[:, :-1]).float().mean()
    return {"pch": pch, "rest_rate": float((pitches < 0).float().mean()), "change_rate": float(changes)}
