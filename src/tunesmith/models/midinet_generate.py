"""MidiNet's generation (mixed into `midinet.MidiNet`): bar after bar from a start bar, the seed bank of
real bars stored in the weights, chords cycled over the new bars, and (with the `history` option) each
bar's history recomputed from the bars written so far (`data.bar_pairs.history_features`).

Each new bar comes from fresh noise and the bar before it (a primer's last bar with notes, or a random
bar of the seed bank, which is not written). Without sampling options each step is the generator's
argmax, as in training; `--temperature`, `--top-k`, `--top-p` draw from the softmax over pitch + rest
instead. Either way only pitches inside the central 90 % of the bank's real bars (the training
melodies) can sound: the generator's logits outside it are noise it was never pushed away from.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F  # noqa: N812

from tunesmith.core.errors import UserError
from tunesmith.data.bar_pairs import history_features, piece_profile
from tunesmith.models.base import SamplePlan
from tunesmith.models.distributions import SamplingConfig, is_default, sample_categorical
from tunesmith.models.midinet_bars import (
    N_PITCHES,
    PROFILE_FLOOR,
    bars_to_pitches,
    fit_to_chords,
    last_filled_bar,
    off_scale_mask,
    out_of_key_mask,
    pitches_to_bars,
    profile_log_prior,
)
from tunesmith.representations.bars import chord_vector


class MidiNetSampling:
    """Generation methods of `MidiNet` (needs `config`, `generate_logits`, `join` and the bank buffers)."""

    @torch.no_grad()
    def sample(self, plan: SamplePlan, generator: torch.Generator) -> list[np.ndarray]:
        """`plan.n` pieces (context bars + `plan.bars` new bars, 16, 128) uint8, in the bars layout.

        A model with profiles writes each piece in the key and register of a real piece: the primer's
        (its whole profile), else the training piece of the seed-bank bar it starts from, moved to the
        key that fits `--chords` best when chords are given (`fit_to_chords`)."""
        self.eval()
        chords = self.chord_plan(plan.chords, plan.bars)
        before = None
        if plan.context is not None:
            context = torch.from_numpy(np.asarray(plan.context, dtype=np.float32))
            start = last_filled_bar(context).expand(plan.n, -1, -1)
            profiles = torch.from_numpy(piece_profile(context.numpy())).expand(plan.n, -1)
            before = context[:-1].expand(plan.n, -1, -1, -1)  # the history sees the whole primer
        else:
            context = None
            start, profiles = self.bank_start(plan.n, generator, None if chords is None else chords.numpy())
        bars = self.continue_bars(start, plan.bars, chords, generator, plan.sampling,
                                  profiles if self.config.profile else None, before)
        if context is not None:
            bars = torch.cat([context.expand(plan.n, -1, -1, -1), bars], dim=1)
        return [piece.numpy().astype(np.uint8) for piece in bars]

    def chord_plan(self, names: list[str] | None, n_bars: int) -> Tensor | None:
        """(n_bars, 13) chord vectors for the new bars (cycling `names`; "no chord" without names), or
        None for a model trained without chords."""
        if not self.config.chords:
            return None
        if not names:
            return torch.zeros(n_bars, self.config.chord_dim)
        vectors = np.stack([chord_vector(name) for name in names])
        return torch.from_numpy(vectors[np.arange(n_bars) % len(vectors)])

    def bank_bars(self, n: int, generator: torch.Generator) -> Tensor:
        """`n` random real bars (n, T, 128) from the seed bank stored in the checkpoint."""
        return self.bank_start(n, generator)[0]

    def bank_start(self, n: int, generator: torch.Generator,
                   chords: np.ndarray | None = None) -> tuple[Tensor, Tensor | None]:
        """`n` random real bars (n, T, 128) from the seed bank and their pieces' profiles (n, 14) (None
        for a model without profiles); with chords (m, 13), each bar and profile moved to the key
        that fits them best."""
        filled = int(min(self.bank_count.item(), self.config.seed_bank))
        if filled == 0:
            raise UserError("this checkpoint holds no real bars to start from; give a --primer MIDI file")
        pick = torch.randint(0, filled, (n,), generator=generator)
        pitches = self.bank_pitches[pick]
        if not self.config.profile:
            return pitches_to_bars(pitches), None
        profiles = self.bank_profiles[pick].numpy()
        if chords is not None:
            pitches, profiles = fit_to_chords(pitches, profiles, chords)
        return pitches_to_bars(pitches), torch.from_numpy(np.asarray(profiles, np.float32))

    def pitch_range(self) -> tuple[int, int]:
        """The central 90 % (5th to 95th percentile) of the pitches in the seed bank's real bars: where
        the training melodies live, without the rare extremes a GAN over-produces (all 128 when empty)."""
        filled = int(min(self.bank_count.item(), self.config.seed_bank))
        pitches = self.bank_pitches[:filled].float()
        pitches = pitches[pitches >= 0]
        if not len(pitches):
            return 0, N_PITCHES - 1
        low, high = torch.quantile(pitches, torch.tensor([0.05, 0.95]))
        return int(low.floor()), int(high.ceil())

    def histories(self, written: Tensor, profiles: Tensor) -> Tensor:
        """(B, 23) history vectors of the bars that follow `written` (B, n, T, 128), the pieces' bars so
        far, for pieces with `profiles` (B, 14)."""
        rows = [history_features(piece.numpy(), profile.numpy()) for piece, profile in zip(written, profiles,
                                                                                          strict=True)]
        return torch.from_numpy(np.stack(rows))

    @torch.no_grad()
    def continue_bars(self, start: Tensor, n_bars: int, chords: Tensor | None, generator: torch.Generator,
                      sampling: SamplingConfig | None = None, profiles: Tensor | None = None,
                      before: Tensor | None = None) -> Tensor:
        """`n_bars` bars after `start` (B, T, 128) -> (B, n_bars, T, 128) one-hot floats. `chords`:
        (n_bars, 13) shared, (B, n_bars, 13) per piece, or None. `profiles` (B, 14): the pieces'
        profiles for a model with profiles (default: each start bar's own). `before` (B, n, T, 128): the
        bars before `start`, for a model with `history` (default none: `start` is the piece's first)."""
        prev, out = start.float(), []
        if self.config.profile and profiles is None:
            profiles = torch.from_numpy(np.stack([piece_profile(bar[None]) for bar in prev.numpy()]))
        if not self.config.profile:
            profiles = None
        told = None if profiles is None else profiles.float().clone()  # the profile G is conditioned on
        if told is not None:
            told[:, 13] *= self.config.spread_scale
        if chords is not None and chords.dim() == 2:
            chords = chords.expand(len(prev), -1, -1)
        written = prev[:, None] if before is None else torch.cat([before.float(), prev[:, None]], dim=1)
        bias = self.logit_bias(len(prev), profiles)
        prior = self.interval_log_prior() if self.config.interval_prior > 0 else None  # the bank's: once
        for i in range(n_bars):
            history = self.histories(written, profiles) if self.config.history else None
            cond = self.join(None if chords is None else chords[:, i].float(), told, history)
            bar_bias = bias + self.feedback_bias(written, profiles)
            bar = self.draw_bar(prev, cond, bar_bias, generator, sampling, prior)
            for _ in range(self.config.redraws):
                again = self.draw_again(bar, written)
                if not again.any():
                    break
                bar[again] = self.draw_bar(prev[again], cond[again] if cond is not None else None,
                                           bar_bias[again], generator, sampling, prior)
            prev = bar
            out.append(prev)
            written = torch.cat([written, prev[:, None]], dim=1)
        return torch.stack(out, dim=1)

    def draw_again(self, bar: Tensor, written: Tensor) -> Tensor:
        """(B,) bool: which new bars (B, T, 128) `redraws` replaces, after the pieces' bars so far `written`
        (B, n, T, 128): a silent bar, one that repeats the bar before note for note, and (with
        `min_recent_pitches`) one that leaves it and the 3 bars before it on fewer different pitches."""
        prev = written[:, -1]
        again = ((bar == prev).flatten(1).all(1) & prev.flatten(1).any(1)) | ~bar.flatten(1).any(1)
        if self.config.min_recent_pitches > 0:
            recent = torch.cat([written[:, -3:], bar[:, None]], dim=1)  # (B, <=4, T, 128)
            pitches = recent.amax(dim=(1, 2)).sum(-1)  # (B,) different pitches sounded
            again |= pitches < self.config.min_recent_pitches
        return again

    def feedback_bias(self, written: Tensor, profiles: Tensor | None) -> Tensor:
        """(B, 1, 129) `profile_feedback` times log((profile share + 0.02) / (share so far + 0.02)) on each
        pitch's class: classes the piece has used more than its profile says lose, those it has used less
        gain (0 when off). The share so far counts the steps of the bars `written` (B, n, T, 128) plus one
        bar's worth of steps shared as the profile, so the first bars are not pushed hard."""
        out = torch.zeros(len(written), 1, N_PITCHES + 1)
        if self.config.profile_feedback <= 0 or profiles is None:
            return out
        target = profiles[:, :12].float()
        steps = written.sum(dim=(1, 2))  # (B, 128) steps per pitch so far
        used = torch.zeros(len(written), 12).index_add_(1, torch.arange(N_PITCHES) % 12, steps)
        pseudo = written.shape[2] * (target.sum(-1, keepdim=True) > 0)  # one bar of the profile's steps
        so_far = (used + pseudo * target) / (used.sum(-1, keepdim=True) + pseudo).clamp(min=1)
        gap = torch.log(target + PROFILE_FLOOR) - torch.log(so_far + PROFILE_FLOOR)
        out[:, 0, :N_PITCHES] = self.config.profile_feedback * gap[:, torch.arange(N_PITCHES) % 12]
        return out

    def logit_bias(self, n: int, profiles: Tensor | None) -> Tensor:
        """(n, 1, 129) added to each piece's logits: -inf outside the seed bank's central 90 %
        (`pitch_range`), -`off_key_penalty` off the piece's profile (`out_of_key_mask`), -`scale_penalty` off
        its best-fitting scale (`off_scale_mask`; the two add up), plus `profile_prior` times
        `profile_log_prior` (how much the piece uses each pitch class), else 0."""
        low, high = self.pitch_range()
        bias = torch.full((n, 1, N_PITCHES + 1), float("-inf"))
        bias[..., low : high + 1] = bias[..., N_PITCHES] = 0.0
        for penalty, mask in ((self.config.off_key_penalty, out_of_key_mask),
                              (self.config.scale_penalty, off_scale_mask)):
            if penalty > 0 and profiles is not None:
                pitches = bias[:, 0, :N_PITCHES]
                bias[:, 0, :N_PITCHES] = torch.where(mask(profiles.float()).bool(), pitches - penalty, pitches)
        if self.config.profile_prior > 0 and profiles is not None:
            bias[:, 0, :N_PITCHES] += self.config.profile_prior * profile_log_prior(profiles.float())
        return bias

    def draw_bar(self, prev: Tensor, cond: Tensor | None, bias: Tensor, generator: torch.Generator,
                 sampling: SamplingConfig | None, prior: Tensor | None = None) -> Tensor:
        """One new bar (B, T, 128) one-hot after `prev` (B, T, 128) from fresh noise, `bias` (B, 1, 129)
        (`logit_bias`) added to the generator's logits; argmax without sampling options. With `hold_bias`,
        `leap_penalty` or `interval_prior` the steps are chosen in order: the step before's pitch gets the
        hold bonus, every other pitch the melodic terms of its distance from the last pitch sounded
        (`melodic_bias`, with `prior`, the bank's `interval_log_prior`, when `interval_prior` is on)."""
        noise = torch.randn(len(prev), self.config.noise_dim, generator=generator)
        logits = self.generate_logits(prev, cond, noise) + bias
        if self.config.hold_bias <= 0 and self.config.leap_penalty <= 0 and self.config.interval_prior <= 0:
            return F.one_hot(self.choose(logits, sampling, generator), N_PITCHES + 1)[..., :N_PITCHES].float()
        rows, steps = torch.arange(len(prev)), []
        last = self.last_pitch(prev)  # (B,) the previous bar's last sounding pitch, -1 for none
        for t in range(logits.shape[1]):
            step = logits[:, t].clone()
            step[:, :N_PITCHES] += self.melodic_bias(last, prior)
            if steps:  # hold the last pitch; a rest (index 128) gets no bonus
                held = steps[-1] < N_PITCHES
                step[rows[held], steps[-1][held]] += self.config.hold_bias
            steps.append(self.choose(step, sampling, generator))
            last = torch.where(steps[-1] < N_PITCHES, steps[-1], last)
        return F.one_hot(torch.stack(steps, dim=1), N_PITCHES + 1)[..., :N_PITCHES].float()

    def melodic_bias(self, last: Tensor, prior: Tensor | None) -> Tensor:
        """(B, 128) logit terms of each pitch for pieces whose last sounded pitch is `last` (B,) (-1: none,
        all 0): -`leap_penalty` per octave from it, plus `interval_prior` times `prior` (13,)
        (`interval_log_prior`) at the interval's size in semitones (12 and more share its last entry)."""
        size = (torch.arange(N_PITCHES)[None] - last[:, None]).abs()  # (B, 128) semitones
        out = -self.config.leap_penalty * size.float() / 12
        if prior is not None:
            out = out + self.config.interval_prior * prior[size.clamp(max=len(prior) - 1)]
        return out * (last >= 0)[:, None]

    def interval_log_prior(self) -> Tensor:
        """(13,) log share of each melodic interval of 0..11 semitones and of 12 or more between consecutive
        notes of the seed bank's real bars (held notes count once), add-one smoothed, minus that of the most
        common one (so it is 0 and others are negative); 0 at 0 semitones, where `hold_bias` rules."""
        filled = int(min(self.bank_count.item(), self.config.seed_bank))
        counts = torch.ones(13)
        for row in self.bank_pitches[:filled].long():
            sounding = row[row >= 0]
            if len(sounding) < 2:
                continue
            notes = sounding[torch.cat([torch.ones(1, dtype=torch.bool), sounding[1:] != sounding[:-1]])]
            sizes = (notes[1:] - notes[:-1]).abs().clamp(max=12)
            counts += torch.bincount(sizes, minlength=13).float()
        counts[0] = 0  # repeated notes: not melodic intervals here
        log_share = torch.log(counts / counts.sum())
        log_share[0] = log_share[1:].max()
        return log_share - log_share.max()

    @staticmethod
    def last_pitch(bars: Tensor) -> Tensor:
        """(B,) the last sounding pitch of each bar (B, T, 128), -1 for a silent bar."""
        pitches = bars_to_pitches(bars)  # (B, T), -1 = rest
        index = torch.where(pitches >= 0, torch.arange(pitches.shape[1]), -1).max(-1).values
        return torch.where(index >= 0, pitches.gather(1, index.clamp(min=0)[:, None])[:, 0], -1)

    @staticmethod
    def choose(logits: Tensor, sampling: SamplingConfig | None, generator: torch.Generator) -> Tensor:
        """Indices (...) from logits (..., 129): argmax without sampling options, else a draw."""
        if sampling is None or is_default(sampling):
            return logits.argmax(-1)
        return sample_categorical(logits, sampling, generator)
