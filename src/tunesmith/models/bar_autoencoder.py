"""The bar autoencoder behind MidiNet's second metric: real bars -> a small latent -> bars.

Trained on real bars only (registered family "bar-autoencoder", data kind "bars", recipe
`configs/midinet_autoencoder.yaml`), then frozen: generated bars that lie where real bars lie in its
latent space, and that it reconstructs as well as real bars, look like real bars to it.

Encoder: the conditioner's conv stack without normalisation (per-step Linear 128 -> C, three
pair-of-steps convs down to 2 steps, LeakyReLU 0.2), flattened to 2C, Linear -> latent (16, as the
seed). Decoder: the mirror image with `PairUp` (upsampling without transposed convs), ending in
per-step logits over 128 pitches + rest. Trained with cross-entropy over those 129 classes per step
(a bar is one pitch or rest per step); the seed trained a sigmoid output with MSE, and its MSE per
cell is what `reconstruction_mse` reports, for comparison with the seed's numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812

from tunesmith.core.errors import UserError
from tunesmith.models.base import MusicModel, check_positive
from tunesmith.models.midinet_layers import PairDown, PairUp
from tunesmith.representations.bars import BarsRepresentation

N_PITCHES = 128


@dataclass
class BarAutoencoderConfig:
    steps_per_bar: int = 16  # filled from the representation; a multiple of 8
    channels: int = 16
    latent_dim: int = 16


class BarAutoencoder(MusicModel):
    """Bar autoencoder for MidiNet's latent metric: a (T, 128) bar <-> a 16-d code.

    Batch: {"bar": (B, T, 128) one-hot bars, ...}; `loss` is the mean cross-entropy per step.
    """

    name: ClassVar[str] = "bar-autoencoder"
    Config: ClassVar[type] = BarAutoencoderConfig
    data_kind: ClassVar[str] = "bars"
    cpu_threads: ClassVar[int] = 1

    def __init__(self, config: BarAutoencoderConfig) -> None:
        super().__init__()
        self.config = config
        c, low = config.channels, config.steps_per_bar // 8
        self.low_steps = low
        self.enc_first = nn.Linear(N_PITCHES, c)
        self.enc_downs = nn.ModuleList(PairDown(c, c) for _ in range(3))
        self.to_latent = nn.Linear(low * c, config.latent_dim)
        self.from_latent = nn.Linear(config.latent_dim, low * c)
        self.dec_ups = nn.ModuleList(PairUp(c, c) for _ in range(3))
        self.dec_out = nn.Linear(c, N_PITCHES + 1)

    @classmethod
    def debug_config(cls) -> dict:
        return {"channels": 4, "latent_dim": 3}

    @classmethod
    def validate_config(cls, config: BarAutoencoderConfig) -> None:
        check_positive(config, "channels", "latent_dim")
        if config.steps_per_bar % 8 or config.steps_per_bar < 8:
            raise UserError(f"model config steps_per_bar must be a multiple of 8, got {config.steps_per_bar}")

    @classmethod
    def debug_dims(cls) -> dict:
        return {"steps_per_bar": 16}

    def example_batch(self, batch_size: int = 4) -> dict[str, Tensor]:
        steps = self.config.steps_per_bar
        classes = torch.randint(0, N_PITCHES + 1, (batch_size, steps))
        return {"bar": F.one_hot(classes, N_PITCHES + 1)[..., :N_PITCHES].float()}

    def encode(self, bars: Tensor) -> Tensor:
        """(B, T, 128) bars -> (B, latent_dim) codes."""
        h = F.leaky_relu(self.enc_first(bars.float()), 0.2)
        for down in self.enc_downs:
            h = F.leaky_relu(down(h), 0.2)
        return self.to_latent(h.flatten(1))

    def decode(self, codes: Tensor) -> Tensor:
        """(B, latent_dim) codes -> (B, T, 129) logits over 128 pitches + rest."""
        h = F.leaky_relu(self.from_latent(codes), 0.2).reshape(len(codes), self.low_steps, -1)
        for up in self.dec_ups:
            h = F.leaky_relu(up(h), 0.2)
        return self.dec_out(h)

    def forward(self, bars: Tensor) -> Tensor:
        return self.decode(self.encode(bars))

    def loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        bars = batch["bar"].float()
        logits = self(bars)
        target = bar_classes(bars)
        loss = F.cross_entropy(logits.flatten(0, 1), target.flatten())
        accuracy = (logits.argmax(-1) == target).float().mean()
        return {"loss": loss, "accuracy": accuracy, "mse": reconstruction_mse(logits, bars).mean()}

    @torch.no_grad()
    def reconstruction(self, bars: Tensor) -> dict[str, Tensor]:
        """Per-bar reconstruction errors of (B, T, 128) bars: "mse" (per cell, the seed's unit) and
        "cross_entropy" (nats per step), each (B,)."""
        self.eval()
        bars = bars.float()
        logits = self(bars)
        ce = F.cross_entropy(logits.transpose(1, 2), bar_classes(bars), reduction="none").mean(1)
        return {"mse": reconstruction_mse(logits, bars), "cross_entropy": ce}

    @torch.no_grad()
    def embed_pieces(self, representation, scores) -> np.ndarray:
        """The `tunesmith evaluate --embedder` seam: one row per piece, the mean code (latent_dim,) of
        its bars that hold a note. Pieces of any meter are cut every `steps_per_bar` steps from tick 0;
        pieces without a melody note are left out."""
        reader = BarsRepresentation(representation.config, other_meters="ignore")
        encode, _ = bar_functions(self)
        rows = []
        for score in scores:
            bars = [b for b in reader.encode(score) if b.any()]
            if bars:
                rows.append(encode(np.stack(bars)).mean(axis=0))
        return np.stack(rows) if rows else np.zeros((0, self.config.latent_dim))


def bar_classes(bars: Tensor) -> Tensor:
    """(B, T, 128) one-hot bars -> (B, T) class per step: the pitch, or 128 for a rest."""
    return torch.where(bars.amax(-1) > 0, bars.argmax(-1), torch.full_like(bars.argmax(-1), N_PITCHES))


def reconstruction_mse(logits: Tensor, bars: Tensor) -> Tensor:
    """Mean squared error per cell between the decoded pitch probabilities and the one-hot bars: (B,)."""
    probs = torch.softmax(logits, dim=-1)[..., :N_PITCHES]
    return ((probs - bars.float()) ** 2).mean(dim=(1, 2))


def load_autoencoder(path: Path | str) -> BarAutoencoder:
    """A trained bar autoencoder from its checkpoint (file, run folder or shipped name)."""
    from tunesmith.models.checkpoint import load_model

    loaded = load_model(path)
    if not isinstance(loaded.model, BarAutoencoder):
        raise UserError(f"{path} holds a {loaded.name!r} model, not a bar autoencoder")
    return loaded.model


def bar_functions(model: BarAutoencoder, batch: int = 1024) -> tuple[Callable, Callable]:
    """numpy views of the autoencoder for the torch-free metric (`evaluation/midinet_metrics.py`):
    `encode(bars (n, T, 128)) -> (n, latent)` and `errors(bars) -> (n,)` reconstruction MSE per bar."""

    def chunks(bars: np.ndarray):
        for i in range(0, len(bars), batch):
            yield torch.from_numpy(np.asarray(bars[i : i + batch], np.float32))

    @torch.no_grad()
    def encode(bars: np.ndarray) -> np.ndarray:
        model.eval()
        return np.concatenate([model.encode(b).numpy() for b in chunks(bars)]).astype(np.float64)

    def errors(bars: np.ndarray) -> np.ndarray:
        per_bar = [model.reconstruction(b)["mse"].numpy() for b in chunks(bars)]
        return np.concatenate(per_bar).astype(np.float64)

    return encode, errors

