"""Audio VAE-GAN on piano-key energies: audio in, audio out (after Vlasenko's MusiGAN, seed 002).

Data kind "audio": batches {"context": (B, C, K, T) keys of a real chunk, "target": (B, C, K, T) the keys
of the chunk right after it} in [0, 1], from the `pianokeys` representation (C audio channels, K keys,
T frames; 500 frames of 20 ms = the seed's 10 s).

Generator: input (B, C*K, T) -> conv encoder -> per step (mu, logvar) of width D at T/4 steps ->
reparameterise (eps times the sampling temperature) -> Transformer encoder (sinusoidal positions) ->
conv-transpose decoder with skips (+ with `key_profile` a per-chunk bias per key from the mean latent:
which keys the chunk uses, as a chorale stays in its key) -> sigmoid -> (B, C, K, T), times an optional
learnable Gaussian envelope over time. Its input is white noise (mode "noise", the seed), the context chunk (mode
"continuation": the next 10 s), or either per item (mode "both": a `noise_share` of each batch gets
noise, so one checkpoint generates both ways). Discriminator: residual spectral-normed Conv1d blocks
over the chunk (with the context chunk stacked on its channels when continuing; zeros stand for
"no context"), the key statistics appended, minibatch discrimination, a logit.

Losses (weights in the config; the trainer is `training/gan_phases.py`):
- G: rec_weight x SmoothL1(G(input), target) + adv_weight x BCE(D(G), 1) + kl_weight x KL per chunk
  (summed over latent steps and widths, as the seed) + stat_weight x sum over the key statistics
  (`audio_vaegan_layers.key_statistics`; with `extended_statistics` also onset rate, per-key attack and
  flatness, `music_statistics`) of the gap between fakes and real targets (`statistics_gap`):
  `stat_match` "mean" compares batch means (a generator whose chunks all sound alike, each at the average,
  pays nothing), "sorted" compares the distributions over the batch (1-D Wasserstein). With
  noise input the target is an unpaired real chunk (the seed's reconstruction), which pulls towards
  the mean chunk, so its weight is `noise_reconstruction` x rec_weight (default 0: noise items learn from
  D and the statistics alone; the seed's 1 makes them blur towards the mean chunk).
  With `share_weight` > 0, + share_weight x the same sorted distance for each key's share of the chunk's
  energy (`key_shares`, x K): the per-key statistics above are levels, whose spread over chunks follows
  the chunk's loudness; the share is what the key-energy overlap measures (session 5: the lowest keys'
  shares varied 2-3 times as much over generated chunks as over real ones).
- D: BCE(D(real + n), 1 - label_smoothing) + BCE(D(fake + n), 0); instance noise n ~ N(0, s^2),
  s = instance_noise x (1 - progress) (annealed to 0 over training; the seed kept 0.05, on real only).
  With `d_patch`, D also gives a logit per patch of the chunk and the BCE averages over all of them.
- Fine-tuning: `trainer.init_from` (`tunesmith train --init-from CKPT`) starts a new run from a checkpoint's
  G and D; a part the checkpoint lacks (a new patch head) keeps its fresh values (training/init_from.py).
- Pretraining (steps in batches): `pretrain_g_steps` of G alone (reconstruction + KL + statistics), then
  `pretrain_d_steps` of D alone with its own optimizer (the seed stepped G's optimizer there, so its D
  was never pretrained). Then `d_steps` D updates and `g_steps` G updates in turn, each update
  accumulating `accumulation` batches; bfloat16 autocast on CUDA when `amp`.

The seed's statistics terms, settled: its no-seconds (chunked the batch axis), no-silence, melody (last
batch item only), std (last chunk only) and min-max terms became the six statistics above, computed over
every chunk and matched between fakes and real chunks in G's loss (one weight, `stat_weight`), and fed to
D as features (`d_statistics`) instead of D-side losses: those depended on D's weights only through a
sigmoid weighting, which taught D nothing the BCE does not. `kl_loss_songs_d` (KL between even and odd
batch items) is removed: it measures how different two random songs are, not realism.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812

from tunesmith.core.errors import UserError
from tunesmith.models.audio_vaegan_layers import (
    Decoder,
    Discriminator,
    Encoder,
    Envelope,
    all_statistics,
    key_shares,
    n_statistics,
    sinusoids,
    statistics_gap,
    statistics_vector,
)
from tunesmith.models.base import MAX_DEPTH, MusicModel, check_choice, check_fraction, check_positive

MODES = ("noise", "continuation", "both")
STAT_MATCHES = ("mean", "sorted")


@dataclass
class AudioVAEGANConfig:
    channels: int = 1  # filled from the representation
    n_keys: int = 88  # filled from the representation
    chunk_frames: int = 500  # T: frames per chunk (the data's window); a multiple of 4
    mode: str = "both"
    noise_share: float = 0.5  # mode "both": share of training items whose input is noise
    width: int = 64  # W, encoder and decoder channels (seed 128)
    latent_dim: int = 64  # D (seed 512)
    heads: int = 4  # seed 8
    layers: int = 1  # Transformer layers (seed 1)
    dropout: float = 0.1
    envelope: int = 3  # Gaussians of the learnable envelope; 0: none (seed: 3)
    d_width: int = 32  # channels of D's first block, doubling per block up to d_max_width
    d_max_width: int = 256
    d_blocks: int = 4  # seed 8
    d_statistics: bool = True  # append the key statistics to D's features
    extended_statistics: bool = False  # add onset rate, per-key attack and flatness to the statistics
    stat_match: str = "mean"  # "mean": batch means; "sorted": each statistic's distribution over the batch
    key_profile: bool = False  # a per-chunk, per-key bias from the latent summary (which keys the chunk uses)
    share_weight: float = 0.0  # G: each key's share of a chunk's energy matched as a distribution over the batch
    d_patch: bool = False  # D also gives one logit per ~2-s patch of the chunk (`Discriminator`)
    mbd_kernels: int = 10
    mbd_dim: int = 5
    rec_weight: float = 2.0
    noise_reconstruction: float = 0.0  # share of rec_weight for noise items, whose target is unpaired (seed 1)
    adv_weight: float = 1.0
    kl_weight: float = 5e-5
    stat_weight: float = 1.0
    label_smoothing: float = 0.2  # real target 1 - smoothing
    instance_noise: float = 0.05
    silence_level: float = 0.3  # a frame whose loudest key is below this is silent (statistics; db scale: -56 dB)
    pretrain_g_steps: int = 0
    pretrain_d_steps: int = 0
    d_steps: int = 1
    g_steps: int = 2  # seed: G twice per batch
    accumulation: int = 1  # batches per optimizer update (seed 16)
    d_lr_ratio: float = 0.5  # D's learning rate / G's (the seed's config meant 1e-4 vs 2e-4)
    amp: bool = True  # bfloat16 autocast on CUDA (ignored on CPU)


class AudioVAEGAN(MusicModel):
    """Audio VAE-GAN: piano-key energies of 10-s audio chunks from noise or continuing a chunk (seed 002).

    Shapes and losses in the module docstring."""

    name: ClassVar[str] = "audio-vaegan"
    Config: ClassVar[type] = AudioVAEGANConfig
    objective: ClassVar[str] = "adversarial-phased"
    data_kind: ClassVar[str] = "audio"
    generation: ClassVar[str] = "audio"
    options: ClassVar[frozenset[str]] = frozenset({"temperature", "primer"})
    cpu_threads: ClassVar[int] = 1

    def __init__(self, config: AudioVAEGANConfig) -> None:
        super().__init__()
        self.config = c = config
        flat = c.channels * c.n_keys
        self.encoder = Encoder(flat, c.width, c.latent_dim, c.dropout)
        layer = nn.TransformerEncoderLayer(c.latent_dim, c.heads, 2 * c.latent_dim, c.dropout, batch_first=True,
                                           norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, c.layers, enable_nested_tensor=False)
        self.decoder = Decoder(c.latent_dim, c.width, flat, c.dropout)
        self.envelope = Envelope(c.latent_dim, c.envelope) if c.envelope else None
        self.key_profile = nn.Linear(c.latent_dim, flat) if c.key_profile else None
        n_stats = n_statistics(flat, c.extended_statistics) if c.d_statistics else 0
        self.discriminator = Discriminator(flat * (1 if c.mode == "noise" else 2), c.d_width, c.d_max_width,
                                           c.d_blocks, n_stats, c.mbd_kernels, c.mbd_dim, c.d_patch)
        self.progress = 0.0

    # ---- registry ---------------------------------------------------------------------------------

    @classmethod
    def debug_config(cls) -> dict:
        return {"chunk_frames": 16, "width": 8, "latent_dim": 8, "heads": 2, "d_width": 4, "d_max_width": 8,
                "d_blocks": 2, "mbd_kernels": 3, "mbd_dim": 2, "pretrain_g_steps": 1, "pretrain_d_steps": 1}

    @classmethod
    def debug_dims(cls) -> dict:
        return {"channels": 2, "n_keys": 6}

    @classmethod
    def validate_config(cls, config: AudioVAEGANConfig) -> None:
        check_choice(config, "mode", MODES)
        check_choice(config, "stat_match", STAT_MATCHES)
        check_positive(config, "channels", maximum=2)
        check_positive(config, "n_keys", "width", "latent_dim", "heads", "d_width", "d_max_width", "mbd_kernels",
                       "mbd_dim")
        check_positive(config, "chunk_frames", minimum=8)
        if config.chunk_frames % 4:
            raise UserError(f"model config chunk_frames must be a multiple of 4, got {config.chunk_frames}")
        if config.latent_dim % config.heads or config.latent_dim % 2:
            raise UserError(f"model config latent_dim ({config.latent_dim}) must be even and a multiple of heads "
                            f"({config.heads})")
        check_positive(config, "layers", "d_blocks", "d_steps", "g_steps", "accumulation", maximum=MAX_DEPTH)
        if 2**config.d_blocks > config.chunk_frames:
            raise UserError(f"model config d_blocks {config.d_blocks} halves {config.chunk_frames} frames to nothing")
        check_positive(config, "envelope", minimum=0, maximum=MAX_DEPTH)
        check_positive(config, "pretrain_g_steps", "pretrain_d_steps", minimum=0)
        check_positive(config, "noise_reconstruction", "rec_weight", "adv_weight", "kl_weight", "stat_weight",
                       "share_weight", "instance_noise", minimum=0)
        check_positive(config, "d_lr_ratio", minimum=1e-6)
        check_fraction(config, "dropout", "noise_share", "label_smoothing", "silence_level")

    def example_batch(self, batch_size: int = 2) -> dict[str, Tensor]:
        shape = (batch_size, self.config.channels, self.config.n_keys, self.config.chunk_frames)
        device = next(self.parameters()).device
        return {"context": torch.rand(shape, device=device) ** 4, "target": torch.rand(shape, device=device) ** 4}

    def generator_parameters(self):
        return [p for name, p in self.named_parameters() if not name.startswith("discriminator.")]

    def discriminator_parameters(self):
        return self.discriminator.parameters()

    def set_progress(self, progress: float) -> None:
        self.progress = float(progress)

    # ---- the generator ----------------------------------------------------------------------------

    def generate(self, inputs: Tensor, temperature: float = 1.0,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Inputs (B, C, K, T) (keys or noise) -> (keys (B, C, K, T) in [0, 1], mu, logvar (B, T/4, D))."""
        b, c, k, t = inputs.shape
        mu, logvar = self.encoder(inputs.reshape(b, c * k, t))
        # drawn where the generator lives (a CPU generator samples the same eps for a model on any device)
        eps = torch.randn(mu.shape, generator=generator, device=generator.device if generator else mu.device,
                          dtype=torch.float32).to(mu.device, mu.dtype)
        z = mu + temperature * eps * torch.exp(0.5 * logvar)
        h = self.transformer(z + sinusoids(z.shape[1], z.shape[2], z.device).to(z.dtype))
        logits = self.decoder(h)
        if self.key_profile is not None:  # (B, C*K, 1): lifts or mutes a key for the whole chunk
            logits = logits + self.key_profile(h.mean(1)).unsqueeze(-1)
        keys = torch.sigmoid(logits)
        if self.envelope is not None:
            keys = keys * self.envelope(h.mean(1), t)
        return keys.reshape(b, c, k, t), mu, logvar

    def inputs(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """(generator inputs, D's context, (B,) bool: noise items) for a batch: per item the context chunk,
        or white noise with a zero context (mode "noise": always; "both": a random `noise_share` of the
        items in training, the first `noise_share` in evaluation, so validation is the same every epoch)."""
        context = batch["context"].float()
        b = len(context)
        if self.config.mode == "continuation":
            return context, context, torch.zeros(b, dtype=torch.bool, device=context.device)
        if self.config.mode == "noise":
            noisy = torch.ones(b, dtype=torch.bool, device=context.device)
        elif self.training:
            noisy = torch.rand(b, device=context.device) < self.config.noise_share
        else:
            noisy = torch.arange(b, device=context.device) < round(self.config.noise_share * b)
        mask = noisy.view(b, 1, 1, 1)
        return torch.where(mask, torch.randn_like(context), context), torch.where(mask, 0.0, context), noisy

    # ---- losses -----------------------------------------------------------------------------------

    def _critic(self, keys: Tensor, context: Tensor) -> Tensor:
        """D's logits (B,) for keys (B, C, K, T) after `context` (ignored in mode "noise")."""
        c, (b, ch, k, t) = self.config, keys.shape
        stats = statistics_vector(all_statistics(keys, c.silence_level, c.extended_statistics)) \
            if c.d_statistics else None
        x = keys.reshape(b, ch * k, t)
        if c.mode != "noise":
            x = torch.cat([context.reshape(b, ch * k, t), x], dim=1)
        return self.discriminator(x, stats)

    def _noisy(self, keys: Tensor) -> Tensor:
        scale = self.config.instance_noise * (1.0 - self.progress) if self.training else 0.0
        return keys + scale * torch.randn_like(keys) if scale > 0 else keys

    def _check(self, batch: dict[str, Tensor]) -> None:
        shape = tuple(batch["target"].shape[1:])
        expected = (self.config.channels, self.config.n_keys, self.config.chunk_frames)
        if shape != expected:
            raise UserError(f"the data's chunks are (channels, keys, frames) {shape}, the model is built for "
                            f"{expected}; set data.window to model.config.chunk_frames")

    def _generator_terms(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        self._check(batch)
        inputs, context, noisy = self.inputs(batch)
        target = batch["target"].float()
        fake, mu, logvar = self.generate(inputs)
        c = self.config
        per_item = F.smooth_l1_loss(fake, target, reduction="none").mean(dim=(1, 2, 3))
        rec = (per_item * torch.where(noisy, c.noise_reconstruction, 1.0)).mean()
        kl = -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(dim=(1, 2)).mean()
        real_stats, fake_stats = (all_statistics(x, c.silence_level, c.extended_statistics) for x in (target, fake))
        stat = statistics_gap(fake_stats, real_stats, c.stat_match)
        loss = c.rec_weight * rec + c.kl_weight * kl + c.stat_weight * stat
        terms = {"reconstruction": rec, "kl": kl, "statistics": stat, "fake": fake, "context": context}
        if c.share_weight:  # per key, sorted over the batch: the spread of shares over chunks counts too
            terms["shares"] = statistics_gap({"share": key_shares(fake)}, {"share": key_shares(target)}, "sorted")
            loss = loss + c.share_weight * terms["shares"]
        return {"loss": loss, **terms}

    def loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """G's and D's losses on one batch, summed under "loss" (registry checks: every parameter is
        reached); training runs them separately through the phased objective."""
        g, d = self.generator_loss(batch), self.discriminator_loss(batch)
        return {"loss": g["loss"] + d["loss"], **{f"g_{k}": v for k, v in g.items()},
                **{f"d_{k}": v for k, v in d.items()}}

    def pretrain_generator_loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """G alone: reconstruction + KL + statistics (no D)."""
        terms = self._generator_terms(batch)
        return {k: v for k, v in terms.items() if k not in ("fake", "context")}

    def generator_loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        terms = self._generator_terms(batch)
        fake, context = terms.pop("fake"), terms.pop("context")
        logits = self._critic(self._noisy(fake), context)
        adversarial = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        terms["adversarial"] = adversarial
        terms["loss"] = terms["loss"] + self.config.adv_weight * adversarial
        return terms

    def discriminator_loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        self._check(batch)
        inputs, context, _ = self.inputs(batch)
        with torch.no_grad():
            fake, _, _ = self.generate(inputs)
        real_logits = self._critic(self._noisy(batch["target"].float()), context)
        fake_logits = self._critic(self._noisy(fake), context)
        real_label = torch.full_like(real_logits, 1.0 - self.config.label_smoothing)
        loss = (F.binary_cross_entropy_with_logits(real_logits, real_label)
                + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
        accuracy = ((real_logits > 0).float().mean() + (fake_logits < 0).float().mean()) / 2
        return {"loss": loss, "accuracy": accuracy, "real_probability": torch.sigmoid(real_logits).mean()}

    @torch.no_grad()
    def validation_metrics(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """On held-out pairs, with eps = 0 (the generator's mean output): "reconstruction" SmoothL1 to the
        real next chunk (of the continuation items; in mode "noise" an unpaired real chunk);
        "key_energy_gap": mean |difference| of the batch's per-key mean energy, generated vs real;
        "silence_gap" likewise for the silent share;
        "d_accuracy". "loss" (picks best.ckpt) = reconstruction + key_energy_gap + silence_gap."""
        self._check(batch)
        inputs, context, noisy = self.inputs(batch)
        target = batch["target"].float()
        fake, _, _ = self.generate(inputs, temperature=0.0)
        per_item = F.smooth_l1_loss(fake, target, reduction="none").mean(dim=(1, 2, 3))
        rec = per_item[~noisy].mean() if bool((~noisy).any()) else per_item.mean()
        real_stats, fake_stats = (all_statistics(x, self.config.silence_level, False) for x in (target, fake))
        key_gap = (fake_stats["key_mean"].mean(0) - real_stats["key_mean"].mean(0)).abs().mean()
        silence_gap = (fake_stats["silence"].mean() - real_stats["silence"].mean()).abs()
        real_logits, fake_logits = self._critic(target, context), self._critic(fake, context)
        accuracy = ((real_logits > 0).float().mean() + (fake_logits < 0).float().mean()) / 2
        return {"loss": rec + key_gap + silence_gap, "reconstruction": rec, "key_energy_gap": key_gap,
                "silence_gap": silence_gap, "d_accuracy": accuracy}

    # ---- generation -------------------------------------------------------------------------------

    @torch.no_grad()
    def sample_keys(self, n: int, context: np.ndarray | None, generator: torch.Generator,
                    temperature: float = 1.0) -> np.ndarray:
        """`n` chunks (n, C, K, T) float32 in [0, 1]: from white noise, or continuing `context` (C, K, T)
        (the keys of the chunk before, in this model's representation)."""
        self.eval()
        c = self.config
        device = next(self.parameters()).device
        shape = (n, c.channels, c.n_keys, c.chunk_frames)
        if context is None:
            if c.mode == "continuation":
                raise UserError("this audio-vaegan model continues audio only; give a --primer audio file")
            inputs = torch.randn(shape, generator=generator).to(device)
        else:
            if c.mode == "noise":
                raise UserError("this audio-vaegan model generates from noise only; leave out --primer")
            inputs = torch.from_numpy(np.asarray(context, dtype=np.float32)).to(device).expand(shape)
        keys, _, _ = self.generate(inputs, temperature, generator)
        return keys.float().cpu().numpy()
