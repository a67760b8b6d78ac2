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
- with `voicing` (band-5 from session 5 on), `span` (5,) and `voices` (5,): per melodic group the median
  pitch span (highest - lowest + 1 semitones) of a 2-bar window where it plays, and the median number of
  pitches sounding at once (`update_voicing`). Decoding then keeps, in each window and melodic group, only
  the band of `span` pitches that holds the most sounding probability, and at each step at most `voices`
  of its most probable pitches. Why: a predicted latent decodes to a blur whose far tail, picked by the
  count rule, put stray notes in the extreme octaves: the first band-5's 16-bar bass parts spanned 60
  semitones where real ones span 14.5 (bass overlap 0.66 vs 0.90 real vs real, its pitch range feature
  at 0.22), and sounded 1.6 pitches at once where real bass lines sound 1.1. With voicing the "expected"
  rule also counts per bar, not per 2-bar window: a window's count could all go to its surer bar and leave
  the other empty (piano kept 74 % of the bars the real continuation has, 78 % counted per bar).
- `harmony` h > 0: in each bar the melodic groups' sounding probabilities are pooled into one pitch-class
  distribution q (12 bins) and every melodic unit is ranked by p x (12 q[pitch class])^h instead of p (its
  count still comes from p). Each group's decoder alone is unsure of the chord; pooled, the band's
  evidence picks one, so parts that keep their own most probable pitches no longer clash (measured: with
  voicing alone, the tracks' tonal distance moved further from real music's, 0.85 -> 0.71 overlap).
- with `kit` (band-5 since session 9), `kit` (2,): the median number of distinct drum pitches hit in a
  2-bar training window where drums play, and in two consecutive windows where drums play in either
  (`update_kit`, from `update` on the training pairs, which hold window t and t+1). band-5's
  training windows: 3.99 and 4.40 (`benchmarks/calibrate_band.py`; over whole training pieces the mean
  kit of 1, 2, 4, 8 consecutive windows is 4.5, 5.0, 5.7, 6.3: it grows by about the same number of
  pieces each time the span doubles). Decoding keeps, per piece, its kit of `piece_kit_size` drum
  pitches (kit[0] + (kit[1] - kit[0]) log2(windows): 5 for a 16-bar piece) with the most onset
  probability over the whole piece, and in each window the round(kit[0]) of them ranked on the window's
  share of onset probability plus the piece's (`kit_units`), so a piece keeps one kit as `voiced_units`
  keeps one register. The count rule still sets how many hits each bar gets: only where they land
  changes. Why: band-5's drums scattered over rare kit pieces (agogo, bongo, cabasa, claves, wood blocks,
  cowbell) around a kick-and-hat core, each window's blurred decoding giving every piece some
  probability: 24 prior 16-bar samples hit 4.67 distinct drum pitches per bar (real held-out 16-bar
  excerpts 3.24), 20.3 per piece (real 5.2), and put 0.702 of a piece's hits on its 4 most used pitches
  (real 0.959). The per-window kit alone (ranked on window + piece share, no piece kit) gave 3.08 per
  bar, 7.8 per piece and 0.857: windows still swapped kits. With both: 2.96, 4.8 and 0.942, drum hits
  per bar unchanged (12.95; real 11.77) (`benchmarks/drum_kit.py`) except where a bar's count exceeds
  what its kit can hold (kit x 16 steps: 3 of 768 bars of band-5 asked for 65-107). Not applied by the
  "sample" rule (nor is voicing); with `feedback` each window decodes alone, so its piece is the window.
- with `groove` (band-5 since session 10), `groove` (128, bar): drum onsets counted per drum pitch and step of
  the bar in the training windows (`update_groove`). Decoding ranks the piece's kit on its onset probability x
  the pitch's share of all training hits (a kick or a snare before a bongo or a splash the decoder gives as
  much), and each drum unit on its probability x how often that pitch hits at that step of the bar relative to
  its other steps (kick on the beats, hats on the 8ths). Why: with the kit alone some pieces' kits held no kick
  and no snare, and the hits of a kit piece ran in 16ths (the decoder is unsure of a hit's step, and the count
  rule filled every step of the likeliest pitch).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from tunesmith.core.constants import N_PITCHES
from tunesmith.models.window_ae import DRUMS, N_GROUPS, PLANES

VELOCITY = 90  # before any data is seen
MIN_RATE = 0.01


class DecodingStats(nn.Module):
    """Per-group decoding thresholds and velocity tables, learned from the training windows."""

    def __init__(self, window: int, voicing: bool = False, harmony: float = 0.0, bar: int = 16,
                 kit: bool = False, groove: bool = False) -> None:
        super().__init__()
        self.voicing, self.harmony, self.bar, self.drum_kit, self.drum_groove = voicing, harmony, bar, kit, groove
        if voicing:  # no limit until data are seen
            self.register_buffer("span", torch.full((N_GROUPS,), float(N_PITCHES)))
            self.register_buffer("voices", torch.full((N_GROUPS,), float(N_PITCHES)))
            self.register_buffer("voicing_batches", torch.zeros((), dtype=torch.int64))
        if kit:  # only with the flag, so checkpoints without it load and decode as before
            # (one window, two consecutive windows); no limit until data are seen
            self.register_buffer("kit", torch.full((2,), float(N_PITCHES)))
            self.register_buffer("kit_batches", torch.zeros(2, dtype=torch.int64))
        if groove:  # the same: hits per drum pitch and step of the bar, none counted yet
            # counts, not floats: a checkpoint exported to fp16 keeps them exact
            self.register_buffer("groove", torch.zeros(N_PITCHES, bar if window % bar == 0 else window,
                                                       dtype=torch.int64))
        self.register_buffer("thresholds", torch.full((N_GROUPS, PLANES), 0.5))
        self.register_buffer("velocity", torch.full((N_GROUPS, N_PITCHES), float(VELOCITY)))
        self.register_buffer("accent", torch.ones(N_GROUPS, window))
        self.register_buffer("count_scale", torch.ones(N_GROUPS, PLANES))
        self.register_buffer("count_batches", torch.zeros((), dtype=torch.int64))
        self.register_buffer("batches", torch.zeros((), dtype=torch.int64))

    @torch.no_grad()
    def update(self, probs: Tensor, planes: Tensor, mask: Tensor, frames: Tensor, next_planes: Tensor | None = None,
               next_valid: Tensor | None = None) -> None:
        """One training batch: decoded probabilities and real planes (B, 5, 2, W, 128), mask (B, W),
        velocity frames (B, W, 5, 128) of the same steps; with `kit`, the next windows' real planes and
        next_valid (B,), which of them are real (`update_kit`)."""
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
        if self.voicing:
            self.update_voicing(planes, mask)
        if self.drum_kit:
            self.update_kit(planes, mask, next_planes, next_valid)
        if self.drum_groove:
            self.update_groove(planes, mask)

    @torch.no_grad()
    def update_voicing(self, planes: Tensor, mask: Tensor) -> None:
        """`span` and `voices` towards the medians of one batch of real windows: planes (B, 5, 2, W, 128),
        mask (B, W) of real steps. Rate as `update`."""
        self.voicing_batches += 1
        rate = max(1.0 / float(self.voicing_batches), MIN_RATE)
        sound = planes[:, :, 1] * mask[:, None, :, None]  # (B, 5, W, 128)
        used = sound.amax(2) > 0  # (B, 5, 128): pitches each window sounds
        pitch = torch.arange(N_PITCHES, device=planes.device)
        high = torch.where(used, pitch, -1).amax(-1)
        low = torch.where(used, pitch, N_PITCHES).amin(-1)
        at_once = sound.sum(-1)  # (B, 5, W)
        poly = at_once.sum(-1) / (at_once > 0).sum(-1).clamp(min=1)  # (B, 5): mean pitches per sounding step
        for g in range(N_GROUPS):
            plays = used[:, g].any(-1)
            if g == DRUMS or not plays.any():
                continue
            span = (high[plays, g] - low[plays, g] + 1).float().median()
            self.span[g] += rate * (span - self.span[g])
            self.voices[g] += rate * (poly[plays, g].median() - self.voices[g])

    @torch.no_grad()
    def update_kit(self, planes: Tensor, mask: Tensor, next_planes: Tensor | None = None,
                   next_valid: Tensor | None = None) -> None:
        """`kit[0]` towards the median (the lower middle value, as `update_voicing`) number of distinct drum
        pitches hit in one batch's real windows where drums play: planes (B, 5, 2, W, 128), mask (B, W) of
        real steps; with the following windows' planes `next_planes` (the same shape) and `next_valid` (B,),
        which of them are real, also `kit[1]`, the same over two consecutive windows where drums play in either."""
        drums = (planes[:, DRUMS, 0] * mask[:, :, None]).amax(1) > 0  # (B, 128)
        self._blend_kit(0, drums.sum(-1))
        if next_planes is not None:
            both = drums | (next_planes[:, DRUMS, 0].amax(1) > 0)
            self._blend_kit(1, both[next_valid].sum(-1))

    @torch.no_grad()
    def update_groove(self, planes: Tensor, mask: Tensor) -> None:
        """Add one batch's drum onsets at real steps to `groove` (128, bar): planes (B, 5, 2, W, 128), mask (B, W)."""
        hits = (planes[:, DRUMS, 0] > 0) & mask[:, :, None]  # (B, W, 128)
        self.groove += hits.reshape(-1, self.groove.shape[1], hits.shape[-1]).sum(0).T.to(self.groove)

    def drum_priors(self) -> tuple[Tensor, Tensor] | None:
        """(each drum pitch's share of the training hits (128,), each pitch's hit rate at each step of the bar
        over its mean rate (128, bar)) from `groove`; None before any hit is counted."""
        if not self.drum_groove or not float(self.groove.sum()):
            return None
        hits = self.groove.double()
        share = hits.sum(1) / hits.sum()
        return share.float(), (hits / hits.mean(1, keepdim=True).clamp(min=1e-9)).float()

    def _blend_kit(self, i: int, pieces: Tensor) -> None:
        """`kit[i]` towards the median of `pieces` (N,) where > 0, at the rate of `update` counted on the
        batches that hold drums."""
        pieces = pieces[pieces > 0]
        if not len(pieces):
            return
        self.kit_batches[i] += 1
        rate = max(1.0 / float(self.kit_batches[i]), MIN_RATE)
        self.kit[i] += rate * (pieces.float().median() - self.kit[i])

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
        window = self.accent.shape[1]
        rank = harmonised(probs, self.bar, self.harmony) if self.harmony > 0 else probs
        priors = self.drum_priors()
        allowed = voiced_units(rank[:, :, 1], window, self.span, self.voices)[:, :, None] if self.voicing else None
        if self.drum_kit:  # (n, 5, 1, T, 128): the drums' units, both planes, limited to the window's kit
            allowed = torch.ones_like(probs[:, :, :1], dtype=torch.bool) if allowed is None else allowed.clone()
            allowed[:, DRUMS] = kit_units(probs[:, DRUMS, 0], window, self.kit[0], self.kit[1],
                                          None if priors is None else priors[0])[:, None]
        if rule == "expected":  # with voicing the count is per bar: a window's count could all land in one bar
            block = self.bar if self.voicing and window % self.bar == 0 else window
            above = expected_units(probs, block, self.count_scale, allowed, rank)
            if priors is not None:  # each drum pitch its share of the count, on the steps where it usually hits
                onset = probs[:, DRUMS, 0]
                kit = allowed[:, DRUMS, 0] if allowed is not None else torch.ones_like(onset, dtype=torch.bool)
                steps = torch.arange(onset.shape[1], device=onset.device) % priors[1].shape[1]
                above[:, DRUMS, 0] = drum_hits(onset, block, self.count_scale[DRUMS, 0], kit,
                                               onset * priors[1][:, steps].T)
        else:
            above = probs > self.thresholds.to(probs.dtype)[None, :, :, None, None]  # limits (1, 5, 2, 1, 1)
            if allowed is not None:
                above &= allowed
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


def expected_units(probs: Tensor, window: int, scale: Tensor, allowed: Tensor | None = None,
                   rank_by: Tensor | None = None) -> Tensor:
    """probs (n, 5, 2, T, 128) -> bool, the same shape: in each window of `window` steps, group and plane,
    the round(sum of probabilities x scale (5, 2)) units of the highest probability (or of `rank_by`, the
    same shape); with `allowed` (bool, broadcastable to probs) only allowed units, up to that count (the
    count is the whole window's)."""
    n, groups, planes, steps, pitches = probs.shape
    blocks = probs.reshape(n, groups, planes, steps // window, window * pitches)
    total = blocks.sum(-1, keepdim=True) * scale.to(probs.dtype)[None, :, :, None, None]
    count = total.round().long().clamp(max=window * pitches)
    if rank_by is not None:
        blocks = rank_by.reshape(blocks.shape)
    if allowed is not None:
        allowed = allowed.expand_as(probs).reshape(blocks.shape)
        blocks = blocks.masked_fill(~allowed, -1.0)
    chosen = places(blocks, -1) < count
    return (chosen if allowed is None else chosen & allowed).reshape(probs.shape)


def places(scores: Tensor, dim: int) -> Tensor:
    """Each score's place (0: the highest) along `dim`, ties in index order: `places(...) < k` keeps the top k."""
    order = scores.argsort(dim=dim, descending=True, stable=True)
    shape = [1] * scores.dim()
    shape[dim] = scores.shape[dim]
    return torch.empty_like(order).scatter_(dim, order, torch.arange(scores.shape[dim]).reshape(shape).expand_as(order))


def drum_hits(onset: Tensor, block: int, scale: Tensor, allowed: Tensor, rank: Tensor) -> Tensor:
    """Drum onset probabilities (n, T, 128), T whole blocks -> bool (n, T, 128): in each block, the count of the
    "expected" rule (round(sum of probabilities x scale)) shared among the `allowed` pitches in proportion to
    their probability there (largest remainders), each pitch on its `rank`-highest allowed steps. Why not the
    group's top units, as `expected_units`: they run along the likeliest pitch (a kick or a bongo in 16ths)
    where real grooves spread the hits over the kit."""
    n, steps, pitches = onset.shape
    shape = (n, steps // block, block, pitches)
    total = (onset.reshape(shape).sum((2, 3)) * scale.to(onset.dtype)).round()  # (n, blocks)
    mass = (onset * allowed).reshape(shape).sum(2)  # (n, blocks, 128)
    quota = total[..., None] * mass / mass.sum(-1, keepdim=True).clamp(min=1e-12)
    base = quota.floor()
    spare = (total - base.sum(-1)).clamp(min=0)  # (n, blocks): units the floors left
    hits = (base + (places(quota - base, -1) < spare[..., None])).clamp(max=block) * (mass > 0)  # (n, blocks, 128)
    steps_kept = places(rank.masked_fill(~allowed, -1.0).reshape(shape), 2) < hits[:, :, None]
    return (steps_kept & allowed.reshape(shape)).reshape(n, steps, pitches)


def harmonised(probs: Tensor, bar: int, power: float) -> Tensor:
    """probs (n, 5, 2, T, 128), T whole bars of `bar` steps -> ranking scores of the same shape: each melodic
    unit's probability x (12 q)^power, q the bar's pitch-class distribution of the melodic groups' pooled
    sounding probabilities; drums unchanged."""
    n, groups, planes, steps, pitches = probs.shape
    bar = bar if steps % bar == 0 else steps  # a window shorter than a bar (tiny test models): one block
    melodic = torch.arange(groups, device=probs.device) != DRUMS
    sound = probs[:, melodic, 1].reshape(n, -1, steps // bar, bar, pitches).sum((1, 3))  # (n, bars, 128)
    chroma = torch.nn.functional.pad(sound, (0, -pitches % 12)).reshape(n, steps // bar, -1, 12).sum(2)
    share = 12 * chroma / chroma.sum(-1, keepdim=True).clamp(min=1e-9)  # (n, bars, 12), mean 1
    weight = share[..., torch.arange(pitches, device=probs.device) % 12].pow(power)  # (n, bars, 128)
    weight = weight.repeat_interleave(bar, dim=1)  # (n, T, 128)
    out = probs.clone()
    out[:, melodic] = probs[:, melodic] * weight[:, None, None]
    return out


def voiced_units(sound: Tensor, window: int, span: Tensor, voices: Tensor) -> Tensor:
    """Sounding probabilities (n, 5, T, 128), T whole windows -> bool (n, 5, T, 128): the units a melodic
    group may use, in each window the band of round(span[g]) pitches with the most probability and at each
    step the round(voices[g]) most probable pitches of that band; drums: every unit. A window's band is
    chosen on its own share of probability per pitch plus the whole piece's (T), so bands stay in the
    piece's register instead of jumping octaves between windows (real 16-bar bass parts span 14.5
    semitones, 2-bar windows 11)."""
    n, groups, steps, pitches = sound.shape
    allowed = torch.ones_like(sound, dtype=torch.bool)
    blocks = sound.reshape(n, groups, steps // window, window, pitches)
    share, _ = window_and_piece_share(blocks.sum(3))  # (n, 5, windows, 128)
    mass = torch.nn.functional.pad(share.cumsum(-1), (1, 0))  # (n, 5, windows, 129)
    pitch = torch.arange(pitches, device=sound.device)
    for g in range(groups):
        if g == DRUMS:
            continue
        width = int(min(max(round(float(span[g])), 1), pitches))
        low = (mass[:, g, :, width:] - mass[:, g, :, : pitches - width + 1]).argmax(-1)  # (n, windows)
        band = (pitch >= low[..., None]) & (pitch < low[..., None] + width)  # (n, windows, 128)
        inside = blocks[:, g].masked_fill(~band[:, :, None], -1.0)  # (n, windows, W, 128)
        k = int(min(max(round(float(voices[g])), 1), pitches))
        top = inside.topk(k, dim=-1).indices
        keep = torch.zeros_like(inside, dtype=torch.bool).scatter_(-1, top, True) & band[:, :, None]
        allowed[:, g] = keep.reshape(n, steps, pitches)
    return allowed


def kit_units(onset: Tensor, window: int, kit: Tensor | float, pair_kit: Tensor | float | None = None,
              prior: Tensor | None = None) -> Tensor:
    """Drum onset probabilities (n, T, 128), T whole windows -> bool (n, T, 128): in each window the
    round(kit) drum pitches ranked on the window's share of onset probability per pitch plus the whole
    piece's (T), so a piece keeps one kit across windows (as `voiced_units` keeps one register) instead of
    each window picking its own rare pieces. With `pair_kit` (the kit of two consecutive windows), only
    among the piece's kit: its `piece_kit_size` pitches of the most probability over the whole piece. With
    `prior` (128,), each pitch's share of the training hits, pitches are ranked on probability x prior."""
    n, steps, pitches = onset.shape
    onset = onset if prior is None else onset * prior
    share, piece = window_and_piece_share(onset.reshape(n, steps // window, window, pitches).sum(2))
    k = int(min(max(round(float(kit)), 1), pitches))
    if pair_kit is not None:
        size = min(max(round(piece_kit_size(float(kit), float(pair_kit), steps // window)), k), pitches)
        core = piece.topk(size, dim=-1).indices  # (n, 1, size)
        share = share.masked_fill(~torch.zeros_like(piece, dtype=torch.bool).scatter_(-1, core, True), -1.0)
    top = share.topk(k, dim=-1).indices
    keep = torch.zeros_like(share, dtype=torch.bool).scatter_(-1, top, True)
    return keep.repeat_interleave(window, dim=1)


def piece_kit_size(kit: float, pair_kit: float, windows: int) -> float:
    """The kit of `windows` consecutive windows: `kit` for one, growing by (pair_kit - kit) each time the
    span doubles, as real kits grow (band-5's training pieces: mean 4.5, 5.0, 5.7 and 6.3 distinct drum
    pitches over 1, 2, 4 and 8 windows; medians 4, 5, 5, 6)."""
    return kit + max(pair_kit - kit, 0.0) * math.log2(max(windows, 1))


def window_and_piece_share(local: Tensor) -> tuple[Tensor, Tensor]:
    """Probability per window and pitch (..., windows, 128) -> (each window's share per pitch plus the whole
    piece's, the same shape; the piece's sums (..., 1, 128)): the ranking `voiced_units` and `kit_units` choose
    on, so a window keeps to the piece's register or kit unless its own evidence is strong."""
    piece = local.sum(-2, keepdim=True)
    share = local / local.sum(-1, keepdim=True).clamp(min=1e-9) + piece / piece.sum(-1, keepdim=True).clamp(min=1e-9)
    return share, piece


def _blend(buffer: Tensor, total: Tensor, count: Tensor, rate: float) -> None:
    """Move `buffer` towards total / count by `rate` where count > 0."""
    seen = count > 0
    target = total / count.clamp(min=1)
    buffer[seen] += rate * (target[seen] - buffer[seen])
