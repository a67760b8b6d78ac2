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

`decoding: cells` (`cell_roll`, conv-vae-bach from session 6 on): expected counts decode a blur into held
clusters. The decoder's probabilities are nearly constant over a window (a pitch set per half-bar: it does
not know its voices' rhythm), so the most probable units are the same few keys at every step, and even the
real chorales' own posterior means decoded that way were not music (16-bar reconstructions of 4
consecutive windows: OA 0.40 against the chorales, under the random floor 0.54; 7 keys per 4-bar window
where the chorale has 21). The cell rule reads the probabilities per cell of `cell` steps (a quarter):
q = the cell's mean sounding probability per key, n = min(voices, round(sum q)) keys, drawn without
replacement with probabilities proportional to q (the Gumbel top-n trick; greedy: the n most probable),
each sounding through its cell, a note starting where a key starts sounding or where, at the cell's first
step, p(onset) > p(sustain) (a repeated note). A quarter per cell: chorales move in quarters; the draws
give the pitch variety the decoder's distribution holds, which the top-n rule throws away.
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


def cell_units(sound: Tensor, voices: int, cell: int, generator: torch.Generator | None = None) -> Tensor:
    """Sounding probabilities (B, T, K) -> bool (B, T, K): per cell of `cell` steps, min(voices, round(sum of
    the cell's mean probabilities q)) keys, drawn without replacement with probabilities proportional to q
    (generator None: the most probable ones), each sounding through the cell; steps after the last whole
    cell stay silent."""
    b, t, k = sound.shape
    cells = t // cell
    q = cell_means(sound, cell).clamp(min=1e-9)  # (B, cells, K)
    count = q.sum(-1).round().clamp(max=min(voices, k)).long()  # (B, cells)
    chosen = draw_keys(q, count, generator).repeat_interleave(cell, dim=1)  # (B, cells x cell, K)
    return torch.cat([chosen, chosen.new_zeros(b, t - cells * cell, k)], dim=1)


def cell_means(sound: Tensor, cell: int) -> Tensor:
    """Sounding probabilities (B, T, K) -> the mean per cell of `cell` steps (B, T // cell, K)."""
    b, t, k = sound.shape
    return sound[:, : t // cell * cell].reshape(b, t // cell, cell, k).mean(2)


def draw_keys(q: Tensor, count: Tensor, generator: torch.Generator | None) -> Tensor:
    """Key probabilities q (..., K) and key counts (...) -> bool (..., K): `count` keys per row drawn without
    replacement in proportion to q (Gumbel top-n; generator None: the most probable ones)."""
    score = q.clamp(min=1e-9).log()
    if generator is not None:
        uniform = torch.rand(score.shape, generator=generator).clamp(1e-9, 1 - 1e-9)
        score = score - (-uniform.log()).log()
    order = score.argsort(dim=-1, descending=True)
    rank = torch.empty_like(order).scatter_(-1, order, torch.arange(q.shape[-1]).expand_as(order))
    return rank < count[..., None]


def cell_roll(probs: Tensor, voices: int, cell: int, onset_plane: bool,
              generator: torch.Generator | None = None) -> Tensor:
    """Unit probabilities (B, C, T, K) -> a {0, 1} float image of the same shape by `cell_units` (module
    docstring). With `onset_plane` C is [onset, sustain]: a note starts where its key starts sounding or,
    at a cell's first step, where p(onset) > p(sustain); else every channel is a group of sounding units."""
    if not onset_plane:
        return cell_units(probs.flatten(0, 1), voices, cell, generator).reshape(probs.shape).float()
    onset, sustain = probs[:, 0], probs[:, 1]
    sounding = cell_units((onset + sustain).clamp(max=1.0), voices, cell, generator)
    before = torch.zeros_like(sounding)
    before[:, 1:] = sounding[:, :-1]
    first = (torch.arange(sounding.shape[1]) % cell == 0)[None, :, None]
    starts = sounding & (~before | (first & (onset > sustain)))
    return torch.stack([starts, sounding & ~starts], dim=1).float()
