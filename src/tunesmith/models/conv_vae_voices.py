"""`conv-vae` decoding by voices (`decoding: voices`): the cell rule with voice leading, ties and eighths.

The cell rule (`conv_vae_decoding.cell_roll`) draws each quarter's keys anew and holds each through its
quarter: every note is a quarter and the lines jump. The decoder knows more than that. Its onset plane is
calibrated on the metre (prior samples put 0.76 of their onset mass on beats, 0.20 on the eighth between,
as the chorales do: 0.79 / 0.20), and its sustain plane says which keys are held over a beat. This rule
reads a whole piece's probabilities (its windows concatenated in time, so lines continue across windows):

1. **Keys per cell, led** (cell = `cell` steps, a quarter): q = the cell's mean sounding probability per
   key (sounding = p(onset) + p(sustain)), n = min(voices, round(sum q)) keys. `candidates` sets of n keys
   are drawn as the cell rule draws one (Gumbel top-n: without replacement, in proportion to q), and one
   of them is kept with probability proportional to exp(-`leading` x motion), motion = the mean distance
   in semitones from each key of the set to the nearest key of the previous cell's set and back, times
   exp(`harmony`) where the set's pitch classes lie inside one triad or seventh chord (`CHORDS`):
   sampling-importance-resampling, the decoder's set distribution tilted towards small voice motion and
   chords. `leading` and `harmony` 0 is the cell rule.
2. **Ties**: a key kept from one cell to the next is held (one longer note) with probability
   min(1, `ties` x p(sustain) / min(sounding before, sounding at)) at the cell's first step (the share of
   the time the decoder has that key sounding across the beat that it carries over rather than re-strikes;
   `ties` 1: as the decoder says), else re-struck.
3. **Eighths**: a key k of a cell moves on the cell's middle step to a neighbouring key j (1 or 2
   semitones away, not in the cell's set) with probability min(1, `eighths` x sum of p(onset) of those
   neighbours at the middle step), j drawn in proportion to its p(onset) there times exp(`harmony`) where
   the cell's set plus j lies in one chord: two eighths (a passing, neighbour or chord note) where the
   decoder puts off-beat onsets near the voice. With `contrast` c > 0 the onset probabilities of step 3
   are scaled per piece by (r / `offbeat_ratio`)^c, r = the piece's off-beat / beat onset mass: the
   decoder says which pieces move more in eighths but compresses the spread (5-95 % of prior samples
   0.21-0.34, the chorales 0.07-0.48, around the same 0.25), so c stretches it back.

Greedy decoding (interpolate, reconstruct) is the cell rule's greedy one: the most probable keys per cell.
Shapes: probs (B, 2, T, K) = [onset, sustain] x steps x keys; T a multiple of `cell`; cell even.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tunesmith.core.constants import PIANO_LOW
from tunesmith.models.conv_vae_decoding import cell_means, draw_keys


def candidate_sets(q: Tensor, count: Tensor, m: int, generator: torch.Generator) -> Tensor:
    """One cell's key probabilities q (B, K) and key counts (B,) -> `m` sets per row (B, m, K) bool, each
    `count` keys drawn without replacement in proportion to q (`draw_keys`)."""
    return draw_keys(q[:, None].expand(-1, m, -1), count[:, None], generator)


def motion(sets: Tensor, previous: Tensor) -> Tensor:
    """Candidate sets (B, m, K) and the previous cell's set (B, K) -> mean semitones (B, m) from each key of a
    set to the nearest previous key plus from each previous key to the nearest key of the set (0 when
    either is empty)."""
    k = sets.shape[-1]
    keys = torch.arange(k, dtype=torch.float32)
    far = float(k)
    dist = (keys[:, None] - keys[None, :]).abs()  # (K, K)
    to_prev = torch.where(previous[:, None, :], dist[None], far).amin(-1)  # (B, K): key -> nearest previous
    to_set = torch.where(sets[:, :, None, :], dist[None, None], far).amin(-1)  # (B, m, K): key -> nearest in set
    forward = (to_prev[:, None] * sets).sum(-1) / sets.sum(-1).clamp(min=1)
    backward = (to_set * previous[:, None]).sum(-1) / previous.sum(-1, keepdim=True).clamp(min=1)
    empty = ~sets.any(-1) | ~previous.any(-1, keepdim=True)
    return torch.where(empty, 0.0, forward + backward)


# pitch-class sets of the triads and seventh chords (intervals above the root): major, minor, diminished;
# dominant, minor, half-diminished and diminished sevenths, major seventh
CHORDS = ((0, 4, 7), (0, 3, 7), (0, 3, 6), (0, 4, 7, 10), (0, 3, 7, 10), (0, 3, 6, 10), (0, 3, 6, 9), (0, 4, 7, 11))


def chord_templates() -> Tensor:
    """Every chord of `CHORDS` on every root: (12 x len(CHORDS), 12) bool over pitch classes."""
    rows = torch.zeros(12 * len(CHORDS), 12, dtype=torch.bool)
    for i, (root, chord) in enumerate((r, c) for r in range(12) for c in CHORDS):
        rows[i, [(root + step) % 12 for step in chord]] = True
    return rows


def in_chord(sets: Tensor, lowest: int = PIANO_LOW) -> Tensor:
    """Key sets (..., K) bool, key 0 = MIDI `lowest` -> 1.0 where the set's pitch classes all lie in one
    triad or seventh chord (`CHORDS`), else 0.0 (...)."""
    k = sets.shape[-1]
    classes = torch.zeros(k, 12)
    classes[torch.arange(k), (torch.arange(k) + lowest) % 12] = 1.0
    pcs = (sets.float() @ classes) > 0  # (..., 12)
    outside = (pcs[..., None, :] & ~chord_templates()).any(-1)  # (..., chords)
    return (~outside).any(-1).float()


def led_sets(q: Tensor, voices: int, leading: float, harmony: float, candidates: int,
             generator: torch.Generator) -> Tensor:
    """Cell probabilities (B, C, K) -> the chosen keys per cell (B, C, K) bool (step 1 of the docstring)."""
    b, cells, k = q.shape

    count = q.sum(-1).round().clamp(max=min(voices, k)).long()
    chosen, previous = torch.zeros(b, cells, k, dtype=torch.bool), torch.zeros(b, k, dtype=torch.bool)
    rows = torch.arange(b)
    for c in range(cells):
        sets = candidate_sets(q[:, c], count[:, c], candidates, generator)
        weights = torch.exp(harmony * in_chord(sets) - leading * motion(sets, previous))
        pick = torch.multinomial(weights, 1, generator=generator)[:, 0]
        chosen[:, c] = sets[rows, pick]
        previous = torch.where(chosen[:, c].any(-1, keepdim=True), chosen[:, c], previous)
    return chosen


def chordal_keys(chosen: Tensor, lowest: int = PIANO_LOW) -> Tensor:
    """Key sets (B, C, K) -> (B, C, K) float: 1 where the set plus that key lies inside one chord (`CHORDS`)."""
    k = chosen.shape[-1]
    classes = torch.zeros(k, 12)
    classes[torch.arange(k), (torch.arange(k) + lowest) % 12] = 1.0
    pcs = (chosen.float() @ classes) > 0  # (B, C, 12)
    plus = pcs[..., None, :] | torch.eye(12, dtype=torch.bool)  # (B, C, 12 added, 12)
    fits = (~(plus[..., None, :] & ~chord_templates()).any(-1)).any(-1).float()  # (B, C, 12 added)
    return fits @ classes.T  # per key: its pitch class's fit


def eighth_moves(onset_mid: Tensor, chosen: Tensor, eighths: float, harmony: float,
                 generator: torch.Generator) -> Tensor:
    """Onset probabilities at each cell's middle step (B, C, K) and the chosen sets (B, C, K) -> the key each
    chosen key moves to at the middle step (B, C, K) long, -1 where it stays (step 3 of the docstring)."""
    k = chosen.shape[-1]
    keys = torch.arange(k)
    step = (keys[:, None] - keys[None, :]).abs()
    near = (step >= 1) & (step <= 2)  # (K from, K to)
    free = onset_mid * ~chosen  # neighbours already sounding in the cell are not moved to
    mass = free[..., None, :] * near  # (B, C, K from, K to)
    total = mass.sum(-1)
    moves = chosen & (torch.rand(total.shape, generator=generator) < (eighths * total).clamp(max=1.0))
    if harmony > 0:
        mass = mass * torch.exp(harmony * chordal_keys(chosen))[..., None, :]
    flat = mass.reshape(-1, k)
    target = torch.multinomial(flat + (flat.sum(-1, keepdim=True) == 0), 1, generator=generator)
    return torch.where(moves, target.reshape(total.shape), -1)


def voice_roll(probs: Tensor, voices: int, cell: int, leading: float, harmony: float, eighths: float,
               ties: float, candidates: int, generator: torch.Generator, contrast: float = 0.0,
               offbeat_ratio: float = 0.25) -> Tensor:
    """Unit probabilities (B, 2, T, K) of whole pieces -> a {0, 1} float image (B, 2, T, K) of [onset,
    sustain] by the module docstring's steps; steps after the last whole cell stay silent."""
    onset, sustain = probs[:, 0], probs[:, 1]
    sound = (onset + sustain).clamp(max=1.0)
    b, t, k = sound.shape
    cells, half = t // cell, cell // 2
    chosen = led_sets(cell_means(sound, cell), voices, leading, harmony, candidates, generator)
    mid = onset[:, half: cells * cell: cell]  # (B, C, K)
    if contrast > 0:  # a piece's off-beat share, stretched away from the corpus's: (ratio / reference)^contrast
        ratio = onset[:, half::cell].sum((1, 2)) / onset[:, 0::cell].sum((1, 2)).clamp(min=1e-6)  # (B,)
        mid = mid * (ratio / offbeat_ratio).pow(contrast)[:, None, None]
    moves = eighth_moves(mid, chosen, eighths, harmony, generator) if eighths > 0 else torch.full(chosen.shape, -1)
    first = chosen.repeat_interleave(half, dim=1)  # first half of each cell: the chosen keys
    second = chosen & (moves < 0)
    target = torch.zeros(moves.shape, dtype=torch.long).scatter_add_(-1, moves.clamp(min=0), (moves >= 0).long()) > 0
    second = (second | target).repeat_interleave(cell - half, dim=1)
    sounding = torch.stack([first.reshape(b, cells, half, k), second.reshape(b, cells, cell - half, k)], 2)
    sounding = torch.cat([sounding.reshape(b, cells * cell, k), sounding.new_zeros(b, t - cells * cell, k)], 1)
    before = torch.zeros_like(sounding)
    before[:, 1:] = sounding[:, :-1]
    held = ties * sustain / torch.minimum(torch.cat([sound[:, :1], sound[:, :-1]], 1), sound).clamp(min=1e-6)
    beat = (torch.arange(t) % cell == 0)[None, :, None]
    restrike = beat & (torch.rand(sound.shape, generator=generator) >= held.clamp(max=1.0))
    starts = sounding & (~before | restrike)
    return torch.stack([starts, sounding & ~starts], dim=1).float()
