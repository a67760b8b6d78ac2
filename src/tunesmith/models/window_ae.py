"""`window-ae`: one conv autoencoder for every instrument's window of a multitrack roll (the egrillot
"WindowAutoEncoder", fixed), and the codec the `band` family builds on.

Batch (data kind "frames", `multitrack` representation): {"frames": float (B, L, 5, 128) velocities,
"mask": bool (B, L)}, L = data.window. Each group's roll becomes two binary planes (`roll_planes`):
onset (a note begins: it sounds and the previous step differs; every drum hit) and sustain (it
sounds; for drums, the hit). The first `window` steps of each item are encoded per instrument.

One shared model with an instrument embedding, not five: five times fewer weights (the shipped
checkpoint stays a few MB), rare groups (piano is in 41 % of the band files, guitar in 51 %) learn
from the shapes every group shares (onsets on the beat, sustained lines), and all instruments' latents
live in one space, which the predictors and the band's joint start distribution use. The embedding
adds a per-channel bias in each encoder and decoder layer and at the latent.

- Encoder: 3 stride-2 3x3 convs (`channels`, 2x, 2x) over (2, window, 128) -> Linear -> z (latent_dim).
- Decoder: Linear -> reshape, then nearest upsampling + 3x3 conv per level (no transposed convs: they
  fall on a slow path on this CPU), ending in one logit per (plane, step, pitch).
- Loss: binary cross-entropy per unit (nats per instrument-window), so a drum roll of 1-step hits is
  fitted as on/off events: the seed's MSE on velocity/127 of drum rolls collapsed (latent std 0.006).
  The latent is a regularised autoencoder's (Ghosh et al. 2020): Gaussian noise of std `latent_noise`
  is added to z before decoding in training and `latent_l2` * |z|^2 is penalised, so z has a scale
  (about unit), nearby latents decode to similar windows, and a predictor's small errors decode to
  music rather than to noise.
- Logs: "recon" (nats per instrument-window), "f1" of sounding units, "z_std/GROUP" (latent std over the
  batch, mean over dimensions, for windows where the group plays: the collapse check).

Generation: none on its own (`band` chains it); `tunesmith models` lists it for training and measuring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812

from tunesmith.core.constants import MULTITRACK_GROUPS, N_PITCHES
from tunesmith.core.errors import UserError
from tunesmith.models.base import MusicModel, check_fraction, check_positive

N_GROUPS = len(MULTITRACK_GROUPS)
DRUMS = MULTITRACK_GROUPS.index("drums")
PLANES = 2  # onset, sustain
START_DENSITY = 0.02  # initial output probability: a roll is mostly silence


@dataclass
class WindowAEConfig:
    window: int = 32  # steps per latent (2 bars of 16ths at 4 steps per quarter)
    latent_dim: int = 64
    channels: int = 16  # of the first conv layer; the next two have twice as many
    latent_noise: float = 0.1  # std of the noise added to z before decoding in training
    latent_l2: float = 0.01  # weight of |z|^2 per instrument-window in the loss
    steps_per_quarter: int = 4  # the representation's grid (for bars)


def check_codec_config(config) -> None:
    """UserError for a codec config value the conv stack cannot use (shared with `band`)."""
    check_positive(config, "window", "latent_dim", "channels", "steps_per_quarter")
    check_positive(config, "latent_noise", "latent_l2", minimum=0)
    if config.window % 8:
        raise UserError(f"model config window must be a multiple of 8 steps (three stride-2 layers), "
                        f"got {config.window}")


def roll_planes(frames: Tensor) -> Tensor:
    """Velocity frames (B, L, 5, 128) -> binary planes (B, 5, 2, L, 128): onset, sustain.

    A melodic note begins where a step sounds and its velocity differs from the step before (the
    representation's note rule); every sounding drum step is a hit, and a hit is its own sustain."""
    on = frames > 0
    prev = torch.zeros_like(frames)
    prev[:, 1:] = frames[:, :-1]
    onset = on & (frames != prev)
    onset[:, :, DRUMS] = on[:, :, DRUMS]
    planes = torch.stack([onset, on], dim=2).float()  # (B, L, 2, 5, 128) after the stack below
    return planes.permute(0, 3, 2, 1, 4)


class WindowCodec(nn.Module):
    """Instrument-conditioned conv encoder / decoder: (N, 2, window, 128) <-> (N, latent_dim)."""

    def __init__(self, window: int, latent_dim: int, channels: int) -> None:
        super().__init__()
        self.widths = [PLANES, channels, 2 * channels, 2 * channels]
        self.sizes = [(window // 2**i, N_PITCHES // 2**i) for i in range(4)]
        self.downs = nn.ModuleList(nn.Conv2d(self.widths[i], self.widths[i + 1], 3, stride=2, padding=1)
                                   for i in range(3))
        flat = self.widths[-1] * math.prod(self.sizes[-1])
        self.to_z = nn.Linear(flat, latent_dim)
        self.from_z = nn.Linear(latent_dim, flat)
        self.ups = nn.ModuleList(nn.Conv2d(self.widths[i + 1], self.widths[i], 3, padding=1)
                                 for i in reversed(range(3)))
        # instrument embeddings: a bias per channel of every layer, and one at the latent
        self.enc_bias = nn.ParameterList(nn.Parameter(torch.zeros(N_GROUPS, w)) for w in self.widths[1:])
        self.dec_bias = nn.ParameterList(nn.Parameter(torch.zeros(N_GROUPS, self.widths[i]))
                                         for i in reversed(range(1, 3)))
        self.z_bias = nn.Parameter(torch.zeros(N_GROUPS, latent_dim))
        with torch.no_grad():
            self.ups[-1].bias.fill_(math.log(START_DENSITY / (1 - START_DENSITY)))

    def encode(self, planes: Tensor, group: Tensor) -> Tensor:
        """planes (N, 2, window, 128), group (N,) int -> z (N, latent_dim)."""
        h = planes
        for down, bias in zip(self.downs, self.enc_bias, strict=True):
            h = F.relu(down(h) + bias[group][:, :, None, None])
        return self.to_z(h.flatten(1)) + self.z_bias[group]

    def decode(self, z: Tensor, group: Tensor) -> Tensor:
        """z (N, latent_dim), group (N,) -> logits (N, 2, window, 128)."""
        h = F.relu(self.from_z(z)).reshape(len(z), self.widths[-1], *self.sizes[-1])
        for i, conv in enumerate(self.ups):
            h = conv(F.interpolate(h, size=self.sizes[2 - i], mode="nearest"))
            if i < len(self.ups) - 1:
                h = F.relu(h + self.dec_bias[i][group][:, :, None, None])
        return h

    def encode_groups(self, planes: Tensor) -> Tensor:
        """planes (B, 5, 2, window, 128) -> z (B, 5, latent_dim), every group through the shared codec."""
        b = len(planes)
        group = torch.arange(N_GROUPS, device=planes.device).repeat(b)
        return self.encode(planes.flatten(0, 1), group).reshape(b, N_GROUPS, -1)

    def decode_groups(self, z: Tensor) -> Tensor:
        """z (B, 5, latent_dim) -> logits (B, 5, 2, window, 128)."""
        b = len(z)
        group = torch.arange(N_GROUPS, device=z.device).repeat(b)
        return self.decode(z.flatten(0, 1), group).reshape(b, N_GROUPS, PLANES, *self.sizes[0])


def reconstruction_terms(codec: WindowCodec, planes: Tensor, mask: Tensor, noise: float, l2: float,
                         training: bool) -> tuple[Tensor, Tensor, dict[str, Tensor], Tensor]:
    """One window per item: planes (B, 5, 2, W, 128), mask (B, W) -> (loss per instrument-window, z (B,
    5, D), logs, logits (B, 5, 2, W, 128)). In training z is noised before decoding; padding steps are not
    scored."""
    z = codec.encode_groups(planes)
    noisy = z + noise * torch.randn_like(z) if training else z
    logits = codec.decode_groups(noisy)
    units = mask[:, None, None, :, None].float().expand_as(planes)
    bce = (F.binary_cross_entropy_with_logits(logits, planes, reduction="none") * units).sum()
    n = planes.shape[0] * N_GROUPS
    recon = bce / n
    loss = recon + l2 * z.pow(2).sum() / n
    logs = {"recon": recon.detach(), "f1": _f1(logits.detach() > 0, planes > 0, units > 0),
            **latent_spread(z.detach(), planes)}
    return loss, z, logs, logits


def _f1(guess: Tensor, real: Tensor, units: Tensor) -> Tensor:
    """F1 of the sounding units (1 when nothing sounds and nothing is guessed)."""
    guess, real = guess & units, real & units
    total = guess.sum() + real.sum()
    return 2 * (guess & real).sum().float() / total if total > 0 else torch.tensor(1.0)


def latent_spread(z: Tensor, planes: Tensor) -> dict[str, Tensor]:
    """"z_std/GROUP": std over the batch of z (B, 5, D), mean over dimensions, over windows where the
    group plays (NaN-free: 0 when fewer than two such windows)."""
    plays = planes.flatten(2).any(-1)  # (B, 5)
    logs = {}
    for g, name in enumerate(MULTITRACK_GROUPS):
        rows = z[plays[:, g], g]
        logs[f"z_std/{name}"] = rows.std(0).mean() if len(rows) > 1 else torch.tensor(0.0)
    return logs


class WindowAE(MusicModel):
    """Shared conv autoencoder of every instrument's roll window (egrillot WindowAutoEncoder, fixed)."""

    name: ClassVar[str] = "window-ae"
    Config: ClassVar[type] = WindowAEConfig
    data_kind: ClassVar[str] = "frames"
    generation: ClassVar[str | None] = None
    cpu_threads: ClassVar[int] = 1  # small convs: two threads fighting on a shared CPU run slower

    def __init__(self, config: WindowAEConfig) -> None:
        super().__init__()
        self.config = c = config
        self.codec = WindowCodec(c.window, c.latent_dim, c.channels)

    @classmethod
    def debug_config(cls) -> dict:
        return {"window": 16, "latent_dim": 8, "channels": 4}

    @classmethod
    def validate_config(cls, config: WindowAEConfig) -> None:
        check_codec_config(config)
        check_fraction(config, "latent_noise")

    def example_batch(self, batch_size: int = 2) -> dict[str, Tensor]:
        """Sparse random velocities (B, window, 5, 128) and a mask with padding at the end of item 0."""
        return example_frames(batch_size, self.config.window)

    def loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """BCE + latent penalty per instrument-window of each item's first `window` steps."""
        planes, mask = window_planes(batch, self.config.window)
        train = self.training and torch.is_grad_enabled()
        loss, _, logs, _ = reconstruction_terms(self.codec, planes, mask, self.config.latent_noise,
                                             self.config.latent_l2, train)
        return {"loss": loss, **logs}


def window_planes(batch: dict[str, Tensor], window: int, offset: int = 0) -> tuple[Tensor, Tensor]:
    """The planes (B, 5, 2, window, 128) and mask (B, window) of steps [offset, offset + window) of the
    batch's items; UserError when the items are not multitrack frames long enough."""
    frames, mask = batch["frames"], batch["mask"]
    if frames.dim() != 4 or tuple(frames.shape[2:]) != (N_GROUPS, N_PITCHES):
        raise UserError(f"this model needs multitrack frames (window, {N_GROUPS}, {N_PITCHES}): set "
                        f"data.representation to multitrack, got items of shape {tuple(frames.shape[1:])}")
    if frames.shape[1] < offset + window:
        raise UserError(f"data.window is {frames.shape[1]} steps, the model needs {offset + window}")
    planes = roll_planes(frames)[:, :, :, offset : offset + window]
    return planes, mask[:, offset : offset + window]


def example_frames(batch_size: int, length: int) -> dict[str, Tensor]:
    """Random sparse multitrack velocity frames (B, length, 5, 128); item 0 ends in 2 padding steps."""
    generator = torch.Generator().manual_seed(0)
    on = torch.rand(batch_size, length, N_GROUPS, N_PITCHES, generator=generator) < 0.03
    frames = on.float() * 80
    mask = torch.ones(batch_size, length, dtype=torch.bool)
    mask[0, -2:] = False
    frames[0, -2:] = 0
    return {"frames": frames, "mask": mask}
