"""`band`: five instruments from a chain of networks in one checkpoint (the egrillot multitrack system).

One model holds the whole chain, so one checkpoint file, one `generate`, one provenance record:
- the shared window autoencoder (`window_ae.WindowCodec`: each group's 2-bar window <-> a latent z),
- the latent predictors (`latent_predictor.LatentPredictors`: piano z_t -> z_{t+1}, every other group
  (w_t, z_{t+1}) -> w_{t+1}, each seeing the band at t), Gaussian outputs,
- a start distribution: a mixture of diagonal Gaussians over the five latents of one window (5 x D),
  fitted by maximum likelihood to the training windows' latents, so a piece without a primer starts
  from a window whose instruments belong together (the seed started from N(0, 0.001^2) noise).

Training runs in the one training loop, in two stages inside one run, switched by the model's own step
count (a buffer: saved, so a resumed run keeps its stage): for the first `ae_steps` optimizer steps
only the autoencoder learns; after that the predictors and the start distribution learn too, on the
autoencoder's latents with the gradient stopped (the autoencoder keeps refining its reconstruction).
Validation always scores every term, so `best.ckpt` is never a checkpoint with untrained predictors.

Batch (data kind "frames", `multitrack` representation, data.window = 2 x window, data.stride =
window): {"frames": (B, 2 x window, 5, 128) velocities, "mask": (B, 2 x window)}: consecutive windows
t and t+1 of a piece. Loss = reconstruction of window t (BCE nats per instrument-window + latent
penalty, `window_ae.py`) + predictor NLL (nats per dimension) + start NLL (nats per dimension).

Generation (one-shot, `sample`; `generation/band.py` writes the five tracks): a start window (from the
start distribution, or the last window of a multitrack primer), then the predictors step window by
window, sampling their Gaussians (`--temperature`, default `temperature` = 0.5, scales their std: at 1
the noise piles up and windows grow denser along a piece), and every window is decoded: onsets are
Bernoulli draws at the model's odds, a note lasts while its sustain probability is above 1/2. With
`feedback` the next step starts from the encoding of the window just written instead of the latent
drawn; measured mid-training it made the melodic groups fade to silence within 6 windows, so it is off.
Velocity is not modelled: notes get velocity 90 (91 for every other note on a pitch, so that back-to-back
notes stay apart in the velocity roll); drums are hits of one step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from tunesmith.core.errors import UserError
from tunesmith.models.base import MusicModel, SamplePlan, check_fraction, check_positive
from tunesmith.models.latent_predictor import LOGVAR_RANGE, LatentPredictors
from tunesmith.models.window_ae import (
    DRUMS,
    N_GROUPS,
    WindowCodec,
    check_codec_config,
    example_frames,
    reconstruction_terms,
    roll_planes,
    window_planes,
)

VELOCITY = 90


@dataclass
class BandConfig:
    window: int = 32  # steps per latent window (2 bars of 16ths at 4 steps per quarter)
    latent_dim: int = 64
    channels: int = 16
    latent_noise: float = 0.1
    latent_l2: float = 0.01
    hidden: int = 512  # predictor width (the seed: 512)
    layers: int = 3  # predictor depth (the seed: 4)
    dropout: float = 0.1
    input_noise: float = 0.1  # std of the noise on predictor inputs in training
    ae_steps: int = 1000  # stage one: optimizer steps of the autoencoder alone
    start_components: int = 32  # mixture components of the start distribution
    feedback: bool = False  # generation: step on the encoding of each written window (see `chain`)
    temperature: float = 0.5  # generation: default scale of the predicted std (--temperature overrides)
    steps_per_quarter: int = 4


class StartDistribution(nn.Module):
    """A mixture of `components` diagonal Gaussians over a window's five latents, flattened (5 x D):
    the modes of a band (which instruments play) are discrete, which one Gaussian would blur into
    windows where every instrument half plays."""

    def __init__(self, size: int, components: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(components))
        self.mean = nn.Parameter(0.1 * torch.randn(components, size, generator=torch.Generator().manual_seed(0)))
        self.logvar = nn.Parameter(torch.zeros(components, size))

    def nll(self, z: Tensor) -> Tensor:
        """Mean negative log-likelihood of z (B, 5, D), nats per dimension."""
        x = z.flatten(1)[:, None]  # (B, 1, size)
        logvar = self.logvar.clamp(*LOGVAR_RANGE)
        log_normal = -0.5 * (logvar + (x - self.mean).pow(2) / logvar.exp() + math.log(2 * math.pi)).sum(-1)
        log_p = torch.logsumexp(log_normal + self.logits.log_softmax(0), dim=1)
        return -log_p.mean() / z[0].numel()

    @torch.no_grad()
    def sample(self, n: int, temperature: float, generator: torch.Generator | None) -> Tensor:
        """(n, size): a component by its weight, then a draw with its std scaled by `temperature`."""
        k = torch.multinomial(self.logits.softmax(0), n, replacement=True, generator=generator)
        eps = torch.randn(n, self.mean.shape[1], generator=generator)
        return self.mean[k] + temperature * eps * (0.5 * self.logvar[k].clamp(*LOGVAR_RANGE)).exp()


class BandModel(MusicModel):
    """Five-instrument chain: window autoencoder + latent predictors + start distribution (egrillot)."""

    name: ClassVar[str] = "band"
    Config: ClassVar[type] = BandConfig
    data_kind: ClassVar[str] = "frames"
    generation: ClassVar[str] = "one-shot"
    options: ClassVar[frozenset[str]] = frozenset({"temperature", "primer"})
    cpu_threads: ClassVar[int] = 1

    def __init__(self, config: BandConfig) -> None:
        super().__init__()
        self.config = c = config
        self.codec = WindowCodec(c.window, c.latent_dim, c.channels)
        self.predictors = LatentPredictors(c.latent_dim, c.hidden, c.layers, c.dropout)
        self.start = StartDistribution(N_GROUPS * c.latent_dim, c.start_components)
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))

    # ---- registry and tests ---------------------------------------------------------------------

    @classmethod
    def debug_config(cls) -> dict:
        return {"window": 8, "latent_dim": 4, "channels": 4, "hidden": 16, "layers": 1, "ae_steps": 0,
                "start_components": 2}

    @classmethod
    def validate_config(cls, config: BandConfig) -> None:
        check_codec_config(config)
        check_positive(config, "hidden", "layers", "start_components")
        check_positive(config, "ae_steps", "input_noise", "temperature", minimum=0)
        check_fraction(config, "dropout", "latent_noise")

    def example_batch(self, batch_size: int = 2) -> dict[str, Tensor]:
        return example_frames(batch_size, 2 * self.config.window)

    # ---- training -------------------------------------------------------------------------------

    def loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Stage one: reconstruction of window t; stage two (and always in eval): + predictor NLL of
        window t+1 + start NLL. Logs as in `window_ae.py` and `latent_predictor.py`, plus "start_nll"."""
        c, train = self.config, self.training and torch.is_grad_enabled()
        planes, mask = window_planes(batch, c.window)
        loss, z_t, logs = reconstruction_terms(self.codec, planes, mask, c.latent_noise, c.latent_l2, train)
        if train:
            self.step += 1
        if train and int(self.step) <= c.ae_steps:
            return {"loss": loss, **logs}
        next_planes, next_mask = window_planes(batch, c.window, offset=c.window)
        with torch.no_grad():
            z_next = self.codec.encode_groups(next_planes)
        pred, pred_logs = self.predictors.loss(z_t, z_next, next_mask.all(1), c.input_noise, train)
        start = self.start.nll(z_t.detach())
        return {"loss": loss + pred + start, **logs, **pred_logs, "start_nll": start.detach()}

    # ---- generation -----------------------------------------------------------------------------

    @torch.no_grad()
    def encode_window(self, roll: np.ndarray) -> Tensor:
        """The last `window` steps of a (5, T, 128) velocity roll (left-padded with silence when
        shorter) -> latents (5, D)."""
        w = self.config.window
        frames = np.zeros((N_GROUPS, w, roll.shape[2]), np.float32)
        tail = roll[:, -w:] if roll.shape[1] else roll[:, :0]
        frames[:, w - tail.shape[1]:] = tail
        planes = roll_planes(torch.from_numpy(frames).permute(1, 0, 2)[None])
        return self.eval().codec.encode_groups(planes)[0]

    @torch.no_grad()
    def chain(self, start: Tensor | None, n: int, n_windows: int, temperature: float,
              generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """(onset, sustain) bool (n, 5, n_windows x window, 128) of consecutive windows: after `start`
        (5, D) when given, else from a draw of the start distribution. Each window's latents are
        decoded and sampled; with `feedback` the next step starts from the encoding of what was
        written (the predictors then read encoder outputs, as in training, but of sampled windows,
        which are sparser and noisier than real ones)."""
        self.eval()
        if start is None:
            band = self.start.sample(n, temperature, generator).reshape(n, N_GROUPS, -1)
        else:
            band = start[None].expand(n, -1, -1)
        onsets, sustains = [], []
        for k in range(n_windows):
            if k or start is not None:
                band = self.predictors.step(band, temperature, generator)
            onset, sustain = self.decode_latents(band[:, None], 1.0, generator)  # the model's onset odds
            onsets.append(onset)
            sustains.append(sustain)
            if self.config.feedback:
                roll = torch.from_numpy(velocity_rolls(onset.numpy(), sustain.numpy())).float()
                band = self.codec.encode_groups(roll_planes(roll.permute(0, 2, 1, 3)))
        return torch.cat(onsets, 2), torch.cat(sustains, 2)

    @torch.no_grad()
    def decode_latents(self, z: Tensor, temperature: float, generator: torch.Generator | None
                       ) -> tuple[Tensor, Tensor]:
        """Latents (n, k, 5, D) -> (onset, sustain) bool (n, 5, k x window, 128): onsets drawn at
        `temperature` (0: logit > 0), sustain where its probability is above 1/2."""
        n, k = z.shape[:2]
        logits = self.eval().codec.decode_groups(z.flatten(0, 1))  # (n k, 5, 2, W, 128)
        logits = logits.reshape(n, k, *logits.shape[1:]).permute(0, 2, 3, 1, 4, 5).flatten(3, 4)
        if temperature > 0:
            p = torch.sigmoid(logits[:, :, 0] / temperature)
            onset = torch.rand(p.shape, generator=generator) < p
        else:
            onset = logits[:, :, 0] > 0
        return onset, logits[:, :, 1] > 0

    @torch.no_grad()
    def sample(self, plan: SamplePlan, generator: torch.Generator) -> list[np.ndarray]:
        """`plan.n` (5, steps, 128) uint8 velocity rolls: the primer (`plan.context`, a multitrack roll,
        padded to whole bars) then `plan.bars` new 4/4 bars."""
        temperature = self.config.temperature if plan.sampling.temperature is None else plan.sampling.temperature
        bar = 4 * self.config.steps_per_quarter
        context = primer_roll(plan.context, bar)
        new_steps = plan.bars * bar
        n_windows = math.ceil(new_steps / self.config.window)
        start = self.encode_window(context) if context.shape[1] else None
        onset, sustain = self.chain(start, plan.n, n_windows, temperature, generator)
        rolls = velocity_rolls(onset.numpy(), sustain.numpy())[:, :, :new_steps]
        return [np.concatenate([context, roll], axis=1) for roll in rolls]


def primer_roll(context: np.ndarray | None, bar: int) -> np.ndarray:
    """A multitrack primer roll (5, T, 128), or an empty one, padded with silence to whole bars."""
    if context is None:
        return np.zeros((N_GROUPS, 0, 128), np.uint8)
    context = np.asarray(context)
    if context.ndim != 3 or context.shape[0] != N_GROUPS:
        raise UserError(f"a band model continues a multitrack roll (5, steps, 128), got {context.shape}")
    steps = -(-context.shape[1] // bar) * bar
    out = np.zeros((N_GROUPS, steps, context.shape[2]), np.uint8)
    out[:, : context.shape[1]] = context
    return out


def velocity_rolls(onset: np.ndarray, sustain: np.ndarray) -> np.ndarray:
    """(n, 5, T, 128) onset and sustain bools -> uint8 velocity rolls: a note starts at an onset and
    lasts while sustain holds (drums: one step); successive notes of a pitch alternate VELOCITY and
    VELOCITY + 1, so the representation's rule (a note ends where the velocity changes) keeps them
    apart."""
    n, groups, steps, pitches = onset.shape
    roll = np.zeros(onset.shape, np.uint8)
    active = np.zeros((n, groups, pitches), bool)
    count = np.zeros((n, groups, pitches), np.int64)
    melodic = np.arange(groups) != DRUMS
    for t in range(steps):
        on = onset[:, :, t]
        active = on | (sustain[:, :, t] & active & ~on & melodic[None, :, None])
        count += on
        roll[:, :, t] = np.where(active, VELOCITY + count % 2, 0)
    return roll
