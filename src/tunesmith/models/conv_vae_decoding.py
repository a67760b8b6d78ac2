"""`conv-vae` decoding by expected counts: from unit probabilities to a roll that reads as notes.

Why not a Bernoulli draw per unit: a conv VAE's decoder is a blur. Its probabilities say which keys sound
in which half-bar, but rarely exceed 1/2 and never agree on the exact step, so independent draws scatter
single-step notes over the whole range (a roll of dots, not lines), and the 1/2 threshold (greedy) leaves
an almost empty roll. The rule here, per window:

- sounding probability s = p(onset) + p(sustain) per key and step (the two planes are exclusive);
- N = round(sum of s) units sound (the decoder's expected count), taken in order of s, at most `voices`
  keys per step (4 for chorales: the most probable voices, no clusters);
- a note starts where a key starts sounding (as `pianoroll.decode` reads a roll) or where p(onset) >
  p(sustain) inside a sounding run (a repeated note).

Multitrack frames (5 groups, no onset plane) keep per group the N most probable units, `voices` per step.
"""

from __future__ import annotations

import torch
from torch import Tensor


def expected_units(sound: Tensor, voices: int) -> Tensor:
    """Sounding probabilities (B, T, K) -> bool (B, T, K): per window the round(sum) most probable units,
    at most `voices` per step."""
    b, t, k = sound.shape
    top = sound.topk(min(voices, k), dim=-1)
    per_step = torch.zeros_like(sound).scatter(-1, top.indices, top.values)  # other keys of a step: 0
    counts = sound.sum((1, 2)).round().long().clamp(max=t * min(voices, k))
    order = per_step.reshape(b, -1).argsort(dim=1, descending=True)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(t * k).expand(b, -1))
    return (rank < counts[:, None]).reshape(b, t, k) & (per_step > 0)


def expected_roll(probs: Tensor, voices: int, onset_plane: bool) -> Tensor:
    """Unit probabilities (B, C, T, K) -> a {0, 1} float image of the same shape. With `onset_plane` C is
    [onset, sustain] (pianoroll); else every channel is a group of sounding units (multitrack)."""
    if not onset_plane:
        flat = probs.flatten(0, 1)
        return expected_units(flat, voices).reshape(probs.shape).float()
    onset, sustain = probs[:, 0], probs[:, 1]
    sounding = expected_units((onset + sustain).clamp(max=1.0), voices)
    before = torch.zeros_like(sounding)
    before[:, 1:] = sounding[:, :-1]
    starts = sounding & (~before | (onset > sustain))
    return torch.stack([starts, sounding & ~starts], dim=1).float()
