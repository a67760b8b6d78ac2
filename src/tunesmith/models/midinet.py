"""Attention MidiNet: a conv GAN that writes a melody one bar at a time (after Yang et al. 2017,
arXiv:1703.10847, with the SAGAN self-attention of the Isotton & Munafo "Attention MidiNet" project).

A bar is (16 steps, 128 pitches), one note or rest per step (the `bars` representation). Batch (data
kind "bars"): {"bar": (B, 16, 128) float one-hot target bar, "prev": (B, 16, 128) the bar before it
(zeros at a piece's start), "chord": (B, 13) the target bar's chord (zeros = no chord)}.

- Conditioner: a CNN over the previous bar with feature maps at 16, 8, 4 and 2 steps; each is
  concatenated into the generator at its scale (with the chord vector when `chords` is on).
- Generator: noise (100) [+ chord] -> 1024 -> (2 steps x 128 ch) -> three 2x upsamplings -> per-step
  logits over 128 pitches + rest. Self-attention (its own module each) at 4 and 16 steps when
  `attention` is on. Its output is a hard one-hot (monophonic, like real bars) whose backward pass is
  the softmax's (straight-through), so the discriminator's gradient reaches the generator: the seed
  computed the adversarial term on a detached argmax and its generator never learned from D.
- Discriminator: (2, 128) conv -> features `f` (used for feature matching) -> (4, 1) conv ->
  [self-attention] -> 1024 -> logit; the chord vector is concatenated to `f` and to the flat features.
- Losses (seed values as defaults): D = BCE(D(x), 0.9) + BCE(D(G(z)), 0) (one-sided label smoothing);
  G = BCE(D(G(z)), 1) + lambda_mean * 1/2 |E[G(z)] - E[x]|^2 + lambda_feature * 1/2 |E[f(G(z))] - E[f(x)]|^2
  with batch means E; `g_steps` generator updates per discriminator update (seed: 2).

Departures from the seed, each for a stated reason: D's first layer has 16 channels (seed: 1, which
made feature matching compare 8 numbers); chord vectors are dropped (zeroed) for `chord_dropout` of the
training bars so one chord model also generates without chords; a bank of real training bars rides in
the weights (`seed_bank`), so `generate` can start from a random real bar with nothing but the file.

Key and register (`profile`, off by default: the seed's behaviour). Conditioned on the previous bar
alone, bar after bar drifts: the first retrained model used 11 pitch classes per 16 bars where Essen
songs use 7.7. With `profile` the generator also gets the piece's profile (12 pitch-class shares, mean
pitch, spread; `data.bar_pairs.piece_profile`), and `lambda_key` weighs its softmax mass off that
profile. In generation the profile is the primer's, or that of the training piece of the seed-bank
bar it starts from (moved to the key that best fits `--chords`).

History (`history`, off by default). Even in key, a generator that sees one bar back repeats itself:
a bar that reproduces itself is a fixed point, and the first profile model's melodies settled into a
one-bar figure after a few bars. With `history` the condition also holds the bar's history
(`data.bar_pairs.history_features`: pitch classes and register of the last 4 bars, whether the last bar
repeated the one before, the bar's place in an 8-bar phrase), and `lambda_repeat` weighs a batch-moment
term matching how much of each bar repeats the bar before it (real bars vs generated ones).

Generation (`sample`, one shot per bar; `midinet_generate.py`) starts from a primer's last bar with
notes or a random bar of the seed bank; `--chords` (chord models only) cycles. Generation settings in
the config (all off by default): `redraws` (draw again a bar that repeats the one before or is silent),
`hold_bias`, `leap_penalty`, `interval_prior`, `off_key_penalty`, `scale_penalty`, `profile_prior` (logit
biases; steps chosen in order), `spread_scale`, `min_recent_pitches` (draw again a bar that leaves the
last 4 bars on too few pitches).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F  # noqa: N812

from tunesmith.core.errors import UserError
from tunesmith.data.bar_pairs import PROFILE_DIM, history_features, piece_profile
from tunesmith.evaluation.density import pitch_class_kl
from tunesmith.models.base import MAX_DEPTH, MusicModel, check_fraction, check_positive
from tunesmith.models.layers import zero_padded
from tunesmith.models.midinet_bars import (
    N_PITCHES,
    bar_statistics,
    bars_to_pitches,
    key_statistics,
    out_of_key_mass,
    relative_histograms,
    repeat_share,
)
from tunesmith.models.midinet_generate import MidiNetSampling
from tunesmith.models.midinet_layers import straight_through_onehot
from tunesmith.models.midinet_nets import Conditioner, Discriminator, Generator, MidiNetConfig
from tunesmith.representations.bars import CHORD_DIM

__all__ = ["Conditioner", "Discriminator", "Generator", "MidiNet", "MidiNetConfig"]


class MidiNet(MidiNetSampling, MusicModel):
    """Attention MidiNet: bar-by-bar conv GAN on the previous bar (and chords), self-attention as a flag.

    Holds the generator, the discriminator and the seed bank of real bars (buffers `bank_pitches`
    (K, T) int16 pitch per step or -1, `bank_chords` (K, 13) their chords, `bank_count`).
    """

    name: ClassVar[str] = "midinet"
    Config: ClassVar[type] = MidiNetConfig
    objective: ClassVar[str] = "adversarial"
    data_kind: ClassVar[str] = "bars"
    generation: ClassVar[str] = "one-shot"
    options: ClassVar[frozenset[str]] = frozenset({"temperature", "top_k", "top_p", "chords", "primer"})
    cpu_threads: ClassVar[int] = 1  # small matrices: one thread per process is fastest on a shared CPU

    def __init__(self, config: MidiNetConfig) -> None:
        super().__init__()
        self.config = config
        self.generator = Generator(config)
        self.discriminator = Discriminator(config)
        bank = config.seed_bank
        self.register_buffer("bank_pitches", torch.full((bank, config.steps_per_bar), -1, dtype=torch.int16))
        self.register_buffer("bank_chords", torch.zeros(bank, config.chord_dim))
        self.register_buffer("bank_count", torch.zeros((), dtype=torch.int64))
        if config.profile:  # only then: checkpoints of models without profiles have no such buffer
            self.register_buffer("bank_profiles", torch.zeros(bank, PROFILE_DIM))

    @classmethod
    def debug_config(cls) -> dict:
        return {"noise_dim": 8, "gen_hidden": 32, "gen_channels": 8, "cond_channels": 4,
                "disc_first_channels": 4, "disc_channels": 8, "disc_hidden": 16, "chords": True,
                "seed_bank": 8}

    @classmethod
    def validate_config(cls, config: MidiNetConfig) -> None:
        if config.steps_per_bar % 8 or config.steps_per_bar < 16:
            raise UserError(f"model config steps_per_bar must be a multiple of 8, at least 16, "
                            f"got {config.steps_per_bar}")
        check_positive(config, "noise_dim", "gen_hidden", "gen_channels", "cond_channels", "disc_first_channels",
                       "disc_channels", "disc_hidden")
        check_positive(config, "d_steps", "g_steps", maximum=MAX_DEPTH)
        check_positive(config, "lambda_mean", "lambda_feature", "lambda_key", "lambda_repeat", "seed_bank", minimum=0)
        if config.lambda_key > 0 and not config.profile:
            raise UserError("model config lambda_key needs profile: true (the key comes from the piece's profile)")
        reads_profile = config.history or max(config.off_key_penalty, config.scale_penalty, config.profile_prior,
                                                 config.profile_feedback) > 0
        if reads_profile and not config.profile:
            raise UserError("model config history, off_key_penalty, scale_penalty, profile_prior and "
                            "profile_feedback need profile: true (they read the profile)")
        check_positive(config, "tau", "spread_scale", minimum=1e-3)
        check_positive(config, "hold_bias", "off_key_penalty", "leap_penalty", "scale_penalty", "interval_prior",
                       "profile_prior", "profile_feedback", minimum=0)
        check_positive(config, "redraws", minimum=0, maximum=MAX_DEPTH)
        check_positive(config, "min_recent_pitches", minimum=0, maximum=4 * config.steps_per_bar)
        check_fraction(config, "label_smoothing", "chord_dropout")

    def generation_options(self) -> frozenset[str]:
        return self.options if self.config.chords else self.options - {"chords"}

    def grown_weight(self, name: str, weight: Tensor, shape: tuple[int, ...]) -> Tensor | None:
        """`trainer.init_from` a MidiNet with a narrower condition (e.g. `history: true` added to a trained
        profile model): the generator takes its condition last and new condition parts come after the
        old ones, so a weight that grows only gains trailing rows or columns. Those start at zero, so the
        new inputs contribute nothing and the grown model starts as exactly the old function."""
        return zero_padded(weight, shape)

    @classmethod
    def debug_dims(cls) -> dict:
        return {"steps_per_bar": 16}

    def example_batch(self, batch_size: int = 4) -> dict[str, Tensor]:
        """Random monophonic bars (with some rests), chords and piece profiles of the shapes the losses
        expect (each profile is that of its example's bar and previous bar)."""
        steps = self.config.steps_per_bar

        def bars() -> Tensor:
            onehot = F.one_hot(torch.randint(0, N_PITCHES + 1, (batch_size, steps)), N_PITCHES + 1)
            return onehot[..., :N_PITCHES].float()

        chord = F.one_hot(torch.randint(0, 12, (batch_size,)), CHORD_DIM).float()
        bar, prev = bars(), bars()
        profile = torch.from_numpy(np.stack([piece_profile(torch.stack([p, b]).numpy())
                                             for p, b in zip(prev, bar, strict=True)]))
        history = torch.from_numpy(np.stack([history_features(p[None].numpy(), f.numpy())
                                             for p, f in zip(prev, profile, strict=True)]))
        return {"bar": bar, "prev": prev, "chord": chord, "profile": profile, "history": history}

    def generator_parameters(self):
        return self.generator.parameters()

    def discriminator_parameters(self):
        return self.discriminator.parameters()

    def chord_input(self, batch: dict[str, Tensor]) -> Tensor | None:
        """The batch's chords as the networks take them (None without chords); in training, a random
        `chord_dropout` share of them becomes "no chord" (zeros)."""
        if not self.config.chords:
            return None
        chord = batch["chord"].float()
        if self.training and self.config.chord_dropout > 0:
            keep = torch.rand(len(chord), 1, device=chord.device) >= self.config.chord_dropout
            chord = chord * keep
        return chord

    def condition(self, batch: dict[str, Tensor]) -> Tensor | None:
        """The condition vector (B, cond_dim) of a batch: [chord (after dropout), profile, history], or None."""
        return self.join(self.chord_input(batch), batch["profile"].float() if self.config.profile else None,
                         batch["history"].float() if self.config.history else None)

    def chord_of(self, cond: Tensor | None) -> Tensor | None:
        """The chord part of a condition vector: what the discriminator sees (see `midinet_nets`)."""
        return None if cond is None or not self.config.chords else cond[:, : self.config.chord_dim]

    @staticmethod
    def join(*parts: Tensor | None) -> Tensor | None:
        """The non-None parts (B, D_i) side by side (B, sum D_i), or None when all are None."""
        parts = [part for part in parts if part is not None]
        return torch.cat(parts, dim=-1) if parts else None

    def generate_logits(self, prev: Tensor, cond: Tensor | None, noise: Tensor | None = None) -> Tensor:
        """Generator logits (B, T, 129) for previous bars (B, T, 128) and condition vectors (B, cond_dim)
        (`condition`; the chords alone for a model without profiles); fresh noise unless given."""
        if noise is None:
            noise = torch.randn(len(prev), self.config.noise_dim, device=prev.device)
        return self.generator(noise, prev, cond)

    def fake_bars(self, prev: Tensor, cond: Tensor | None, noise: Tensor | None = None) -> Tensor:
        """Generated bars (B, T, 128): one-hot forward, straight-through gradient; all-zero rows = rests."""
        onehot = straight_through_onehot(self.generate_logits(prev, cond, noise), self.config.tau)
        return onehot[..., :N_PITCHES]

    def discriminator_loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        real, prev, cond = batch["bar"].float(), batch["prev"].float(), self.condition(batch)
        with torch.no_grad():
            fake = self.fake_bars(prev, cond)
        real_logit, _ = self.discriminator(real, self.chord_of(cond))
        fake_logit, _ = self.discriminator(fake, self.chord_of(cond))
        smooth = torch.full_like(real_logit, self.config.label_smoothing)
        loss = (F.binary_cross_entropy_with_logits(real_logit, smooth)
                + F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit)))
        if self.training:
            self.remember(batch)
        accuracy = ((real_logit > 0).float().mean() + (fake_logit < 0).float().mean()) / 2
        return {"loss": loss, "accuracy": accuracy}

    def generator_loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Adversarial + mean matching + feature matching (the seed's), plus with `lambda_key` the
        seed's mean matching in each piece's own terms ("key_match": batch means of
        `relative_histograms`, pitch classes counted from the piece's main one and pitches from its
        mean pitch): what teaches G the key and register the profile names, since D does not see the
        profile. A per-bar penalty on softmax mass off the profile (tried first) made G collapse
        onto 3-4 safe pitches and D win every batch; a batch moment leaves each bar free to move."""
        real, prev, cond = batch["bar"].float(), batch["prev"].float(), self.condition(batch)
        logits = self.generate_logits(prev, cond)
        fake = straight_through_onehot(logits, self.config.tau)[..., :N_PITCHES]
        chord = self.chord_of(cond)
        fake_logit, fake_features = self.discriminator(fake, chord)  # not detached: G learns from D
        with torch.no_grad():
            _, real_features = self.discriminator(real, chord)
        adversarial = F.binary_cross_entropy_with_logits(fake_logit, torch.ones_like(fake_logit))
        mean_match = 0.5 * ((fake.mean(0) - real.mean(0)) ** 2).sum()
        feature_match = 0.5 * ((fake_features.mean(0) - real_features.mean(0)) ** 2).sum()
        loss = adversarial + self.config.lambda_mean * mean_match + self.config.lambda_feature * feature_match
        out = {"adversarial": adversarial, "mean_match": mean_match, "feature_match": feature_match}
        if self.config.profile:
            profile = batch["profile"].float()
            relative = relative_histograms(fake, profile).mean(0) - relative_histograms(real, profile).mean(0)
            out["key_match"] = 0.5 * (relative**2).sum()
            loss = loss + self.config.lambda_key * out["key_match"]
            with torch.no_grad():
                out["out_of_key"] = out_of_key_mass(logits, profile, self.config.tau)
        if self.config.lambda_repeat > 0:
            out["repeat_match"] = 0.5 * (repeat_share(fake, prev).mean() - repeat_share(real, prev).mean()) ** 2
            loss = loss + self.config.lambda_repeat * out["repeat_match"]
        return {"loss": loss, **out}

    @torch.no_grad()
    def validation_metrics(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Bars generated from held-out previous bars vs the real next bars.

        "pch_kl": KL(real || generated) of the batch's pitch-class histograms (epsilon 1e-10, the seed's
        training metric); "rest_rate_*": share of silent steps; "change_rate_*": share of steps whose
        pitch differs from the step before. "loss" (picks the best checkpoint) = pch_kl + |rest rate
        difference| + |change rate difference|, so a generator must match pitches and rhythm. With
        profiles also "out_of_key_gen" (share of generated notes off the piece's profile, pitch class
        or register; real notes: about 0.01) and "leap_*" (mean semitones between consecutive notes), and "loss" adds
        out_of_key_gen + |leap difference| / 12: staying in key and moving like the real melodies.
        """
        real, prev, cond = batch["bar"].float(), batch["prev"].float(), self.condition(batch)
        fake = self.fake_bars(prev, cond)
        stats = {"real": bar_statistics(real), "gen": bar_statistics(fake)}
        kl = pitch_class_kl(stats["real"]["pch"], stats["gen"]["pch"])
        out = {"pch_kl": kl}
        for key in ("rest_rate", "change_rate"):
            out.update({f"{key}_{who}": stats[who][key] for who in stats})
        out["loss"] = kl + sum(abs(stats["real"][k] - stats["gen"][k]) for k in ("rest_rate", "change_rate"))
        if self.config.profile:
            keys = {"real": key_statistics(real, batch["profile"]), "gen": key_statistics(fake, batch["profile"])}
            out.update({"out_of_key_gen": keys["gen"]["out_of_key"], "leap_real": keys["real"]["leap"],
                        "leap_gen": keys["gen"]["leap"]})
            out["loss"] += keys["gen"]["out_of_key"] + abs(keys["real"]["leap"] - keys["gen"]["leap"]) / 12
        if self.config.history:  # how much of a bar repeats the bar before: real vs generated
            out.update({f"repeat_{who}": float(repeat_share(bars, prev).mean())
                        for who, bars in (("real", real), ("gen", fake))})
            out["loss"] += abs(out["repeat_real"] - out["repeat_gen"])
        real_logit, _ = self.discriminator(real, self.chord_of(cond))
        fake_logit, _ = self.discriminator(fake, self.chord_of(cond))
        out["d_accuracy"] = float(((real_logit > 0).float().mean() + (fake_logit < 0).float().mean()) / 2)
        return {k: torch.tensor(float(v)) for k, v in out.items()}

    @torch.no_grad()
    def remember(self, batch: dict[str, Tensor]) -> None:
        """Write the batch's real bars (and their chords and piece profiles) into the seed bank, cycling
        (training batches are shuffled, so the bank ends up holding a random sample of training bars)."""
        size = self.config.seed_bank
        if size == 0:
            return
        pitches = bars_to_pitches(batch["bar"])[:size].to(torch.int16)
        index = (self.bank_count + torch.arange(len(pitches), device=pitches.device)) % size
        self.bank_pitches[index] = pitches
        if self.config.chords:
            self.bank_chords[index] = batch["chord"][:size].float()
        if self.config.profile:
            self.bank_profiles[index] = batch["profile"][:size].float()
        self.bank_count += len(pitches)
