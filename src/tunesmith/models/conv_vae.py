"""`conv-vae`: a convolutional VAE over windows of rolls (the egrillot "SimpleConv+VAE", fixed).

Batch (data kind "frames"): {"frames": float (B, window, *frame), "mask": bool (B, window)} where a
frame is a `pianoroll` step (88 keys, [onset, sustain]) with `frame="pianoroll"`, or a `multitrack`
step (5 groups, 128 pitches, velocities) with `frame="multitrack"`. Every unit is binarised (on / off)
and becomes one channel x time x key image (B, channels, window, keys).

- Encoder: `layers` stride-2 3x3 convs (channels doubling from `channels`, ReLU) -> Linear `hidden`
  -> (mu, logvar), `latent_dim` (the seed's 16).
- Decoder: Linear -> Linear -> reshape, then per layer nearest upsampling to the encoder's size at
  that depth + a 3x3 conv (no transposed convs: they fall on a slow path on this CPU), ending in one
  logit per unit, plus a pitch profile from z (a Linear to one logit per unit and key per coarse time
  cell, 8 steps for a 64-step window of 3 layers). Without it the decoder could not say which key
  sounds: nearest upsampling then a 3x3 conv gives every key inside an 8-key block the same logit (the
  session-2 run learned nothing past the per-block density: F1 0 after 700 steps). Units are
  independent Bernoulli units, trained with binary cross-entropy. The seed used MSE on velocities,
  trained on 10 windows; a roll is mostly silence, so the final bias starts at the log
  odds of a 5 % density.
- Loss: (BCE + annealed free-bits KL) per frame (`vae.py`); logs "recon" (nats per frame), "kl" (nats
  per window), "nelbo" (nats per frame), "active_units", "accuracy" (share of units right) and "f1"
  of the sounding units. In eval mode "loss" is the plain -ELBO per frame; padding frames (mask False)
  are not scored.

Generation is one-shot (`sample`): one z ~ p(z) per window (N(0, I), or with `prior_components` a
Gaussian mixture fitted to the training posteriors after training, one component per piece), windows
decoded and concatenated until `plan.bars` 4/4 bars at `steps_per_quarter` are covered; each unit is a Bernoulli draw at
`--temperature` (default 1: the model's distribution), or, with `decoding: expected` and no sampling
option, the expected number of units, `voices` per step, or with `decoding: cells` per quarter cell up to
`voices` keys drawn by their probability (`conv_vae_decoding.py`), or with `decoding: voices` the cells
drawn over a whole piece with voice leading, chords, ties and eighths (`conv_vae_voices.py`). With
`window_correlation` rho the standard normal draws of a piece's windows form a chain (each still N(0, I)
before the prior places it, neighbours correlated rho), so a piece keeps its character across windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812

from tunesmith.core.constants import N_PITCHES, PIANO_KEYS
from tunesmith.core.errors import UserError
from tunesmith.models.base import Likelihood, MusicModel, SamplePlan, check_choice, check_fraction, check_positive
from tunesmith.models.conv_vae_decoding import cell_roll, expected_roll
from tunesmith.models.conv_vae_voices import voice_roll
from tunesmith.models.distributions import is_default, sample_bernoulli
from tunesmith.models.vae import LatentTerms, MixturePrior, negative_elbo, reparameterize

# frame name -> (keys, channels, channels come first in a frame); multitrack decodes at this velocity
FRAMES = {"pianoroll": (PIANO_KEYS, 2, False), "multitrack": (N_PITCHES, 5, True)}
VELOCITY = 80
START_DENSITY = 0.05


@dataclass
class ConvVAEConfig:
    frame: str = "pianoroll"  # pianoroll (frames (88, 2)) | multitrack (frames (5, 128))
    window: int = 64  # steps per latent code; must equal data.window
    latent_dim: int = 16
    channels: int = 32  # of the first conv layer, doubled per layer
    layers: int = 3
    hidden: int = 256
    kl_warmup_steps: int = 1000
    free_bits: float = 0.0
    steps_per_quarter: int = 4  # the representation's grid (sets how many frames make a bar)
    elbo_samples: int = 8  # posterior draws per window when scoring (seeded: repeatable)
    # default and greedy decoding: "bernoulli" (a draw per unit; greedy: p > 1/2), "expected" (the expected
    # count of units, at most `voices` per step) or "cells" (per cell of `cell` steps, `voices` keys at most,
    # drawn by probability; greedy: the most probable): conv_vae_decoding.py; --temperature draws per unit
    # or "voices" (cells with voice leading, ties and eighths, read over a whole piece: conv_vae_voices.py)
    decoding: str = "bernoulli"
    voices: int = 4
    cell: int = 4  # steps per cell of the "cells" and "voices" rules (4: a quarter at 4 steps per quarter)
    leading: float = 0.0  # "voices": weight of voice motion (per semitone) against the decoder's key sets
    harmony: float = 0.0  # "voices": log-weight of key sets that form one triad or seventh chord
    ties: float = 1.0  # "voices": scale of the decoder's hold-over-the-beat probability (1: as it says)
    eighths: float = 0.0  # "voices": scale of the off-beat onset mass that splits a quarter into two eighths
    # "voices": per piece the eighths' onset mass x (its off-beat / beat onset ratio / offbeat_ratio)^contrast
    contrast: float = 0.0
    offbeat_ratio: float = 0.25  # the corpus's off-beat / beat onset ratio (chorales: 0.25)
    candidates: int = 32  # "voices": key sets drawn per cell to choose the led one from
    # 0: prior samples draw z from N(0, I); K > 0: from a K-component Gaussian mixture fitted to the
    # training windows' posteriors after training (`tunesmith fit-prior`; N(0, I) until fitted)
    prior_components: int = 0
    # u_k+1 = rho u_k + sqrt(1 - rho^2) eps for the windows of one piece (u: the standard normal draw that
    # the prior places), so each window's z keeps its prior but a piece keeps its character (0: independent)
    window_correlation: float = 0.0


def conv_sizes(window: int, keys: int, layers: int) -> list[tuple[int, int]]:
    """(time, keys) of the image after each stride-2 layer, input first: 64 x 88 -> 32 x 44 -> ..."""
    sizes = [(window, keys)]
    for _ in range(layers):
        t, k = sizes[-1]
        sizes.append(((t + 1) // 2, (k + 1) // 2))
    return sizes


class ConvVAE(MusicModel):
    """Conv VAE over roll windows (egrillot SimpleConv+VAE): conv encoder -> z -> upsample + conv -> Bernoulli."""

    name: ClassVar[str] = "conv-vae"
    Config: ClassVar[type] = ConvVAEConfig
    data_kind: ClassVar[str] = "frames"
    likelihood: ClassVar[Likelihood] = Likelihood("bound", "frame")
    generation: ClassVar[str] = "one-shot"
    options: ClassVar[frozenset[str]] = frozenset({"temperature"})
    cpu_threads: ClassVar[int] = 1  # small convs: two threads fighting on a shared CPU ran 30x slower here

    def __init__(self, config: ConvVAEConfig) -> None:
        super().__init__()
        self.config = c = config
        self.keys, self.in_channels, self.channels_first = FRAMES[c.frame]
        self.sizes = conv_sizes(c.window, self.keys, c.layers)
        widths = [self.in_channels] + [c.channels * 2**i for i in range(c.layers)]
        self.downs = nn.ModuleList(nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1)
                                   for i in range(c.layers))
        flat = widths[-1] * math.prod(self.sizes[-1])
        self.enc_fc = nn.Linear(flat, c.hidden)
        self.to_posterior = nn.Linear(c.hidden, 2 * c.latent_dim)
        self.dec_hidden = nn.Sequential(nn.Linear(c.latent_dim, c.hidden), nn.ReLU())
        self.dec_fc = nn.Sequential(nn.Linear(c.hidden, flat), nn.ReLU())
        # z's pitch profile: one logit per unit and key for each coarse time cell (nearest-upsampled in time)
        self.to_profile = nn.Linear(c.hidden, self.in_channels * self.sizes[-1][0] * self.keys)
        self.ups = nn.ModuleList(nn.Conv2d(widths[i + 1], widths[i], 3, padding=1)
                                 for i in reversed(range(c.layers)))
        with torch.no_grad():
            self.ups[-1].bias.fill_(math.log(START_DENSITY / (1 - START_DENSITY)))
        self.widths = widths
        self.latent = LatentTerms(c.kl_warmup_steps, c.free_bits)
        self.prior = MixturePrior(c.latent_dim, c.prior_components) if c.prior_components else None

    # ---- registry and tests ---------------------------------------------------------------------

    @classmethod
    def debug_config(cls) -> dict:
        return {"window": 16, "latent_dim": 4, "channels": 4, "layers": 2, "hidden": 16, "kl_warmup_steps": 10,
                "free_bits": 0.1, "elbo_samples": 2}

    @classmethod
    def validate_config(cls, config: ConvVAEConfig) -> None:
        check_choice(config, "frame", tuple(FRAMES))
        check_choice(config, "decoding", ("bernoulli", "expected", "cells", "voices"))
        check_positive(config, "voices", "cell")
        check_positive(config, "candidates", maximum=256)
        check_positive(config, "leading", "harmony", "eighths", "ties", "contrast", minimum=0)
        check_positive(config, "offbeat_ratio", minimum=1e-3)
        check_fraction(config, "window_correlation")
        if config.decoding == "voices" and (config.frame != "pianoroll" or config.cell % 2):
            raise UserError("model config decoding: voices needs frame: pianoroll (an onset plane) and an even "
                            f"cell (it splits cells into two eighths), got frame {config.frame!r}, cell {config.cell}")
        check_positive(config, "window", "latent_dim", "channels", "layers", "hidden", "steps_per_quarter",
                       "elbo_samples")
        check_positive(config, "kl_warmup_steps", "free_bits", "prior_components", minimum=0)
        if config.decoding in ("cells", "voices") and config.window % config.cell:
            raise UserError(f"model config cell must divide the window ({config.window} steps) for decoding: "
                            f"{config.decoding}, got {config.cell}")
        if config.window < 2**config.layers:
            raise UserError(f"model config window must be at least 2**layers = {2**config.layers} steps, "
                            f"got {config.window}")

    def example_batch(self, batch_size: int = 2) -> dict[str, Tensor]:
        """Random sparse frames (B, window, *frame) in {0, 1} and a mask with some padding at the end."""
        frames = (torch.rand(batch_size, self.config.window, *self.frame_shape()) < 0.1).float()
        mask = torch.ones(batch_size, self.config.window, dtype=torch.bool)
        mask[0, -2:] = False
        return {"frames": frames * mask[:, :, None, None], "mask": mask}

    def frame_shape(self) -> tuple[int, int]:
        return (self.in_channels, self.keys) if self.channels_first else (self.keys, self.in_channels)

    # ---- layout ---------------------------------------------------------------------------------

    def to_image(self, frames: Tensor) -> Tensor:
        """Frames (B, T, *frame) -> binary image (B, channels, T, keys)."""
        if frames.shape[1] != self.config.window or tuple(frames.shape[2:]) != self.frame_shape():
            raise UserError(f"a {self.name} model with frame={self.config.frame!r} and window="
                            f"{self.config.window} takes windows of shape ({self.config.window}, "
                            f"{', '.join(map(str, self.frame_shape()))}), got {tuple(frames.shape[1:])}: "
                            "set model config window to data.window")
        image = (frames > 0).float()
        return image.permute(0, 2, 1, 3) if self.channels_first else image.permute(0, 3, 1, 2)

    def from_image(self, image: Tensor) -> np.ndarray:
        """A binary image (channels, T, keys) -> the representation's array: pianoroll (T, 88, 2) bool,
        multitrack (5, T, 128) uint8 velocities."""
        if self.channels_first:
            return (image.numpy() * VELOCITY).astype(np.uint8)
        return image.permute(1, 2, 0).numpy().astype(bool)

    # ---- the network ----------------------------------------------------------------------------

    def posterior(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """(B, channels, T, keys) -> (mu, logvar) (B, latent_dim)."""
        h = image
        for down in self.downs:
            h = F.relu(down(h))
        mu, logvar = self.to_posterior(F.relu(self.enc_fc(h.flatten(1)))).chunk(2, dim=-1)
        return mu, logvar

    def decode_logits(self, z: Tensor) -> Tensor:
        """z (B, D) -> logits (B, channels, T, keys), one per unit: the conv path's logits plus z's pitch
        profile (`to_profile`, exact in key, coarse in time)."""
        hidden = self.dec_hidden(z)
        h = self.dec_fc(hidden).reshape(len(z), self.widths[-1], *self.sizes[-1])
        for i, conv in enumerate(self.ups):
            h = conv(F.interpolate(h, size=self.sizes[-2 - i], mode="nearest"))
            h = F.relu(h) if i < len(self.ups) - 1 else h
        profile = self.to_profile(hidden).reshape(len(z), self.in_channels, self.sizes[-1][0], self.keys)
        return h + F.interpolate(profile, size=tuple(h.shape[2:]), mode="nearest")

    def loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Training: (BCE + annealed free-bits KL) per frame; eval: -ELBO per frame. Logs in the docstring."""
        image, mask = self.to_image(batch["frames"]), batch["mask"].float()
        mu, logvar = self.posterior(image)
        logits = self.decode_logits(reparameterize(mu, logvar))
        units = mask[:, None, :, None].expand_as(image)
        nll = (F.binary_cross_entropy_with_logits(logits, image, reduction="none") * units).sum()
        shaped_kl, kl, logs = self.latent(mu, logvar)
        n_frames = mask.sum().clamp(min=1)
        nelbo = negative_elbo(nll, kl) / n_frames
        loss = (nll + shaped_kl) / n_frames if self.training and torch.is_grad_enabled() else nelbo
        return {"loss": loss, "recon": (nll / n_frames).detach(), "nelbo": nelbo.detach(),
                **self._scores(logits.detach() > 0, image, units), **logs}

    @staticmethod
    def _scores(guess: Tensor, image: Tensor, units: Tensor) -> dict[str, Tensor]:
        """Share of (unpadded) units right, and F1 of the sounding units (1 when none sound or are guessed)."""
        on, real = guess & (units > 0), (image > 0) & (units > 0)
        hits = (on & real).sum().float()
        f1 = 2 * hits / (on.sum() + real.sum()).clamp(min=1) if (on.sum() + real.sum()) > 0 else torch.tensor(1.0)
        right = ((guess == (image > 0)).float() * units).sum() / units.sum().clamp(min=1)
        return {"accuracy": right, "f1": f1}

    # ---- likelihood -----------------------------------------------------------------------------

    @torch.no_grad()
    def log_likelihood(self, array: np.ndarray) -> tuple[float, int]:
        """ELBO, a lower bound on log p (not the exact log-probability), of one piece as its representation
        encodes it (pianoroll (T, 88, 2); multitrack (5, T, 128)): cut into windows of `window` steps (the
        last zero-padded, its padding not scored), each scored as E_q[log p(x | z)] - KL(q || p) with
        `elbo_samples` seeded posterior draws. Returns (ELBO in nats, T frames)."""
        frames, mask = self.windows(np.asarray(array))
        image = self.to_image(frames)
        units = mask[:, None, :, None].float().expand_as(image)
        mu, logvar = self.eval().posterior(image)
        generator = torch.Generator().manual_seed(0)
        recon = 0.0
        for _ in range(self.config.elbo_samples):
            logits = self.decode_logits(reparameterize(mu, logvar, generator))
            bce = F.binary_cross_entropy_with_logits(logits, image, reduction="none")
            recon -= float((bce * units).sum()) / self.config.elbo_samples
        _, kl, _ = self.latent(mu, logvar)
        return recon - float(kl), int(mask.sum())

    def windows(self, array: np.ndarray) -> tuple[Tensor, Tensor]:
        """One encoded piece -> (frames (n, window, *frame) float, mask (n, window) bool), time cut into
        consecutive windows, the last zero-padded."""
        steps = np.moveaxis(array, 1, 0) if self.channels_first else array
        w, n = self.config.window, max(1, math.ceil(len(steps) / self.config.window))
        frames = np.zeros((n * w, *self.frame_shape()), np.float32)
        frames[: len(steps)] = steps
        mask = np.arange(n * w) < len(steps)
        return torch.from_numpy(frames).reshape(n, w, *self.frame_shape()), torch.from_numpy(mask).reshape(n, w)

    # ---- latents and generation -------------------------------------------------------------------

    @torch.no_grad()
    def batch_posterior(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """A batch as `loss` takes it -> (mu, logvar) (B, D) and whether each window is whole (B,) bool:
        no padding past a piece's end (what `tunesmith fit-prior` fits)."""
        mu, logvar = self.eval().posterior(self.to_image(batch["frames"]))
        return mu, logvar, batch["mask"].all(1)

    @torch.no_grad()
    def encode_pieces(self, arrays: list[np.ndarray]) -> Tensor:
        """Encoded pieces -> posterior means (n, latent_dim) of their first windows."""
        first = torch.stack([self.windows(np.asarray(a))[0][0] for a in arrays])
        return self.eval().posterior(self.to_image(first))[0]

    @torch.no_grad()
    def decode_latents(self, z: Tensor, n_steps: int, sampling, generator: torch.Generator | None = None
                       ) -> list[np.ndarray]:
        """Latents (n, D) -> n arrays of `n_steps` steps in the representation's layout; one latent fills
        one window, repeated when `n_steps` exceeds it."""
        images = self.draw(self.eval().decode_logits(z), sampling, generator)
        reps = math.ceil(n_steps / self.config.window)
        return [self.from_image(image) for image in images.repeat(1, 1, reps, 1)[:, :, :n_steps]]

    def draw(self, logits: Tensor, sampling, generator: torch.Generator | None = None) -> Tensor:
        """Window logits (B, C, T, K) -> {0, 1} images: per-unit draws when a temperature is asked for or
        the config's decoding is "bernoulli"; else by expected counts or cells (`conv_vae_decoding`; cells
        drawn with `generator`, or the most probable ones when greedy)."""
        if self.config.decoding == "bernoulli" or not (sampling.greedy or is_default(sampling)):
            return sample_bernoulli(logits, sampling, generator)
        if self.config.decoding == "voices" and not sampling.greedy:
            c = self.config
            return voice_roll(torch.sigmoid(logits), c.voices, c.cell, c.leading, c.harmony, c.eighths, c.ties,
                              c.candidates, generator, c.contrast, c.offbeat_ratio)
        if self.config.decoding in ("cells", "voices"):
            return cell_roll(torch.sigmoid(logits), self.config.voices, self.config.cell, not self.channels_first,
                             None if sampling.greedy else generator)
        return expected_roll(torch.sigmoid(logits), self.config.voices, onset_plane=not self.channels_first)

    @torch.no_grad()
    def sample(self, plan: SamplePlan, generator: torch.Generator) -> list[np.ndarray]:
        """`plan.n` pieces covering `plan.bars` 4/4 bars, one z ~ p(z) per window (N(0, I), or the fitted
        mixture with one component per piece), in the representation's layout."""
        self.eval()
        n_steps = plan.bars * 4 * self.config.steps_per_quarter
        n_windows = math.ceil(n_steps / self.config.window)
        z = torch.randn(plan.n * n_windows, self.config.latent_dim, generator=generator)
        if self.config.window_correlation > 0:
            z = correlated_windows(z.reshape(plan.n, n_windows, -1), self.config.window_correlation).flatten(0, 1)
        if self.prior is not None:
            z = self.prior.place(z, self.prior.draw_components(plan.n, generator).repeat_interleave(n_windows))
        logits = self.decode_logits(z)
        c, w, k = logits.shape[1:]
        if self.config.decoding == "voices":  # decoded as whole pieces: lines carry on across windows
            logits = logits.reshape(plan.n, n_windows, c, w, k).permute(0, 2, 1, 3, 4).reshape(plan.n, c, -1, k)
            return [self.from_image(piece[:, :n_steps]) for piece in self.draw(logits, plan.sampling, generator)]
        images = self.draw(logits, plan.sampling, generator)
        pieces = images.reshape(plan.n, n_windows, c, w, k).permute(0, 2, 1, 3, 4).reshape(plan.n, c, -1, k)
        return [self.from_image(piece[:, :n_steps]) for piece in pieces]


def correlated_windows(eps: Tensor, rho: float) -> Tensor:
    """Standard normal draws (n, windows, D) -> a chain per piece u_0 = eps_0, u_k = rho u_k-1 + sqrt(1 -
    rho^2) eps_k: every u is still N(0, I), neighbours correlate rho."""
    u = [eps[:, 0]]
    for k in range(1, eps.shape[1]):
        u.append(rho * u[-1] + (1 - rho**2) ** 0.5 * eps[:, k])
    return torch.stack(u, 1)
