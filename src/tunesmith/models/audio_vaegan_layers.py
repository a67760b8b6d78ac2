"""The networks of `audio-vaegan` and the key statistics its losses and its discriminator use.

Shapes: B batch, C audio channels, K piano keys, T frames of a chunk (T a multiple of 4), W conv width,
D latent width. Key arrays are (B, C, K, T) in [0, 1]; the convolutions see them as (B, C*K, T), one
channel per (audio channel, key), time along the sequence: the seed flattened keys and frames into one
16,500-long axis, so its kernels mixed the end of one key's row with the start of the next.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812
from torch.nn.utils.parametrizations import spectral_norm

from tunesmith.evaluation.audio_metrics import ACTIVE_LEVEL, ONSET_RISE

STAT_NAMES = ("key_mean", "key_std", "silence", "key_corr", "time_corr", "channel_corr")
EXTRA_NAMES = ("onset_rate", "rise", "flatness", "loudness")  # `music_statistics` (`extended_statistics`)
SEGMENTS = 10  # loudness is measured per tenth of a chunk


class Encoder(nn.Module):
    """(B, in_ch, T) -> (mu, logvar), each (B, T/4, D): two stride-2 convs (BatchNorm, GELU, dropout),
    the second with a skip from the first (average-pooled, the seed's "add interpolated pre-pool
    features"), then per-step linear heads."""

    def __init__(self, in_ch: int, width: int, latent_dim: int, dropout: float) -> None:
        super().__init__()
        self.conv1, self.norm1 = nn.Conv1d(in_ch, width, 9, stride=2, padding=4), nn.BatchNorm1d(width)
        self.conv2, self.norm2 = nn.Conv1d(width, width, 7, stride=2, padding=3), nn.BatchNorm1d(width)
        self.drop = nn.Dropout(dropout)
        self.mu, self.logvar = nn.Linear(width, latent_dim), nn.Linear(width, latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h1 = self.drop(F.gelu(self.norm1(self.conv1(x))))
        h2 = self.drop(F.gelu(self.norm2(self.conv2(h1)))) + F.avg_pool1d(h1, 2)
        h = h2.transpose(1, 2)
        return self.mu(h), self.logvar(h).clamp(-12.0, 8.0)  # exp(logvar) stays finite in half precision


def sinusoids(length: int, dim: int, device: torch.device) -> Tensor:
    """(length, dim) fixed sinusoidal positions (no parameters, any length)."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    rate = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10_000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate[: dim // 2])
    return table


class Decoder(nn.Module):
    """(B, T/4, D) latents -> (B, out_ch, T) logits: a linear map to W channels, two stride-2 transposed
    convs, each stage plus its upsampled input (the seed's skip connections), then a 5-tap conv."""

    def __init__(self, latent_dim: int, width: int, out_ch: int, dropout: float) -> None:
        super().__init__()
        self.inp = nn.Linear(latent_dim, width)
        self.up1, self.norm1 = nn.ConvTranspose1d(width, width, 4, stride=2, padding=1), nn.BatchNorm1d(width)
        self.up2, self.norm2 = nn.ConvTranspose1d(width, width, 4, stride=2, padding=1), nn.BatchNorm1d(width)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Conv1d(width, out_ch, 5, padding=2)

    def forward(self, z: Tensor) -> Tensor:
        h = self.inp(z).transpose(1, 2)
        h = self.drop(F.gelu(self.norm1(self.up1(h)))) + F.interpolate(h, scale_factor=2.0)
        h = self.drop(F.gelu(self.norm2(self.up2(h)))) + F.interpolate(h, scale_factor=2.0)
        return self.out(h)


class Envelope(nn.Module):
    """Learnable Gaussian loudness envelope over a chunk's time: (B, D) summary -> (B, 1, T) gain in (0, 1).

    gain(t) = sigmoid(b + sum_k h_k exp(-((t - c_k) / w_k)^2 / 2)), t in [0, 1]; the centres c_k, widths
    w_k and heights h_k come from the latent summary. (The seed's envelope lay over its flattened
    key-by-frame axis, so it faded keys, not time.)"""

    def __init__(self, latent_dim: int, count: int) -> None:
        super().__init__()
        self.params = nn.Linear(latent_dim, 3 * count)
        self.bias = nn.Parameter(torch.tensor(3.0))  # gain about 0.95 at the start

    def forward(self, summary: Tensor, length: int) -> Tensor:
        centre, width, height = self.params(summary).unsqueeze(-1).chunk(3, dim=1)  # each (B, k, 1)
        t = torch.linspace(0.0, 1.0, length, device=summary.device)
        bumps = height * torch.exp(-0.5 * ((t - torch.sigmoid(centre)) / (0.05 + F.softplus(width))) ** 2)
        return torch.sigmoid(self.bias + bumps.sum(1, keepdim=True))


class ResidualDown(nn.Module):
    """(B, c_in, L) -> (B, c_out, L // 2): spectral-normed conv k4 s2 + LeakyReLU(0.2), plus the
    average-pooled input (through a spectral-normed 1x1 conv when the channel count changes)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = spectral_norm(nn.Conv1d(c_in, c_out, 4, stride=2, padding=1))
        self.skip = spectral_norm(nn.Conv1d(c_in, c_out, 1)) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(self.conv(x), 0.2) + self.skip(F.avg_pool1d(x, 2))


class MinibatchDiscrimination(nn.Module):
    """(B, F) -> (B, F + n_kernels): o_b = sum_{b'} exp(-|M_b - M_b'|_1) - 1 per kernel, M = x T
    (Salimans et al. 2016); a collapsed batch (all alike) stands out. Needs B >= 2 to carry signal."""

    def __init__(self, features: int, n_kernels: int, kernel_dim: int) -> None:
        super().__init__()
        self.n_kernels, self.kernel_dim = n_kernels, kernel_dim
        self.tensor = nn.Parameter(torch.randn(features, n_kernels * kernel_dim) * 0.05)

    def forward(self, x: Tensor) -> Tensor:
        m = (x @ self.tensor).view(len(x), self.n_kernels, self.kernel_dim)
        distances = (m[:, None] - m[None]).abs().sum(-1)  # (B, B, n_kernels)
        return torch.cat([x, torch.exp(-distances).sum(1) - 1.0], dim=1)


class Discriminator(nn.Module):
    """(B, in_ch, T) keys [+ (B, S) statistics] -> logits: residual spectral-normed blocks, mean over
    time, the statistics vector appended (so D sees the music statistics directly), minibatch
    discrimination, a linear logit: (B,). With `patch`, also one logit per position of the last block
    (a spectral-normed 1x1 conv; each sees about 2 s of keys, 2^blocks frames apart), so D judges note
    shapes and onsets where they are instead of through a mean over the chunk: (B, 1 + T / 2^blocks),
    the chunk's logit first. The losses average BCE over every logit."""

    def __init__(self, in_ch: int, width: int, max_width: int, blocks: int, n_stats: int,
                 n_kernels: int, kernel_dim: int, patch: bool = False) -> None:
        super().__init__()
        widths = [in_ch] + [min(width * 2**i, max_width) for i in range(blocks)]
        self.blocks = nn.Sequential(*(ResidualDown(a, b) for a, b in zip(widths, widths[1:], strict=False)))
        features = widths[-1] + n_stats
        self.minibatch = MinibatchDiscrimination(features, n_kernels, kernel_dim)
        self.out = spectral_norm(nn.Linear(features + n_kernels, 1))
        self.patch = spectral_norm(nn.Conv1d(widths[-1], 1, 1)) if patch else None

    def forward(self, x: Tensor, stats: Tensor | None = None) -> Tensor:
        local = self.blocks(x)  # (B, W, L)
        h = local.mean(-1)
        if stats is not None:
            h = torch.cat([h, stats], dim=1)
        logit = self.out(self.minibatch(h))  # (B, 1)
        if self.patch is None:
            return logit.squeeze(-1)
        return torch.cat([logit, self.patch(local)[:, 0]], dim=1)


def _correlation(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation along the last axis, 0 where either side is constant: (..., T) -> (...)."""
    a, b = a - a.mean(-1, keepdim=True), b - b.mean(-1, keepdim=True)
    return (a * b).sum(-1) / ((a.square().sum(-1) * b.square().sum(-1)).sqrt() + 1e-6)


def key_statistics(x: Tensor, silence_level: float) -> dict[str, Tensor]:
    """Per-chunk statistics of keys (B, C, K, T), each over every chunk of the batch (the seed's versions
    kept one chunk or one batch item). Shapes: key_mean, key_std (B, C*K): each key's mean and spread over
    time; silence (B, 1): soft share of frames whose loudest key is below `silence_level`; key_corr
    (B, 1): mean correlation over time of neighbouring keys (the seed's "melody" shift by one key);
    time_corr (B, 1): frame-to-frame correlation (how sustained the notes are); channel_corr (B, 1):
    left-right correlation (1 for mono)."""
    b, c, k, t = x.shape
    loudest = x.amax(dim=(1, 2))  # (B, T)
    silence = torch.sigmoid((silence_level - loudest) / (0.1 * silence_level + 1e-6)).mean(-1, keepdim=True)
    key_corr = _correlation(x[:, :, 1:], x[:, :, :-1]).mean(dim=(1, 2))[:, None]
    time_corr = _correlation(x[..., 1:], x[..., :-1]).mean(dim=(1, 2))[:, None]
    channel_corr = _correlation(x[:, 0], x[:, 1]).mean(-1)[:, None] if c == 2 else torch.ones(b, 1, device=x.device)
    return {"key_mean": x.mean(-1).reshape(b, c * k), "key_std": x.std(-1).reshape(b, c * k), "silence": silence,
            "key_corr": key_corr, "time_corr": time_corr, "channel_corr": channel_corr}


SOFTNESS = 0.01  # width of the soft thresholds of the onsets (keys on the db scale; wider counts jitter)


def music_statistics(x: Tensor) -> dict[str, Tensor]:
    """The statistics `key_statistics` leaves out, soft so that gradients flow; keys (B, C, K, T) ->
    onset_rate (B, 1): note starts per frame summed over keys (a key rising by ONSET_RISE within a frame to
    ACTIVE_LEVEL after not rising the frame before; the real chorales: about 0.3, 16 per second);
    rise (B, C*K): each key's mean frame-to-frame rise beyond ONSET_RISE / 2, in units of ONSET_RISE (how
    often and how sharply its notes attack; the jitter of a noisy texture stays below it);
    flatness (B, 1): spectral flatness over the keys of a frame (geometric / arithmetic mean), mean over
    frames (1 for noise, low for a few clear notes); loudness (B, SEGMENTS): the mean key value of each
    tenth of the chunk (a 10-s window cut anywhere in a piece is about as loud at its end as at its start;
    D pools over time, so without this a generator that fades in or out goes unnoticed)."""
    b, c, k, t = x.shape
    diff = x[..., 1:] - x[..., :-1]
    rising = torch.sigmoid((diff - ONSET_RISE) / SOFTNESS) * torch.sigmoid((x[..., 1:] - ACTIVE_LEVEL) / SOFTNESS)
    starts = rising[..., 1:] * (1.0 - rising[..., :-1])
    onset_rate = starts.sum(dim=(1, 2)).mean(-1, keepdim=True) / c
    mono = x.mean(1).clamp(min=0.0)  # (B, K, T); D sees keys plus instance noise, which can dip below 0
    flatness = (torch.exp(torch.log(mono + 1e-3).mean(1)) / (mono.mean(1) + 1e-3)).mean(-1, keepdim=True)
    rise = F.relu(diff - ONSET_RISE / 2).mean(-1) / ONSET_RISE  # steep rises only, not frame-to-frame jitter
    loudness = F.adaptive_avg_pool1d(x.mean(dim=(1, 2))[:, None], SEGMENTS)[:, 0]
    return {"onset_rate": onset_rate, "rise": rise.reshape(b, c * k), "flatness": flatness, "loudness": loudness}


def all_statistics(x: Tensor, silence_level: float, extended: bool) -> dict[str, Tensor]:
    """`key_statistics`, plus `music_statistics` when `extended`."""
    stats = key_statistics(x, silence_level)
    return {**stats, **music_statistics(x)} if extended else stats


def n_statistics(flat: int, extended: bool) -> int:
    """Width S of `statistics_vector` for C*K = `flat` key rows: 2 C K + 4 (+ C K + 2 + SEGMENTS when extended)."""
    return 2 * flat + len(STAT_NAMES) - 2 + ((flat + 2 + SEGMENTS) if extended else 0)


def statistics_vector(stats: dict[str, Tensor]) -> Tensor:
    """The statistics as one (B, S) matrix, in `STAT_NAMES` then `EXTRA_NAMES` order (those present)."""
    return torch.cat([stats[name] for name in STAT_NAMES + EXTRA_NAMES if name in stats], dim=1)


def key_shares(x: Tensor) -> Tensor:
    """Each key's share of a chunk's energy, times K (1 for an even spread): keys (B, C, K, T) -> (B, K),
    channels averaged first (the quantity whose distribution over chunks the key-energy overlap of
    `evaluation/audio_metrics.py` compares, per key)."""
    energy = x.float().clamp(min=0.0).mean(1).sum(-1)  # (B, K); D's inputs carry noise that dips below 0
    return energy * x.shape[2] / (energy.sum(-1, keepdim=True) + 1e-6)


def statistics_gap(fake: dict[str, Tensor], real: dict[str, Tensor], match: str) -> Tensor:
    """Distance between the statistics of a fake and a real batch (both (B, F) per name), summed over names of
    the mean over features: "mean": |batch mean difference| (matches averages only); "sorted": the 1-D
    Wasserstein distance over the batch, each feature's B values sorted on both sides (matches the spread
    over chunks too: a generator whose chunks all sound alike pays for it). Batches of unequal size are
    compared at quantiles of the smaller."""
    total = torch.zeros((), device=next(iter(fake.values())).device)
    for name, f in fake.items():
        r = real[name].to(f.dtype)
        if match == "mean":
            total = total + (f.mean(0) - r.mean(0)).abs().mean()
            continue
        f, r = f.sort(0).values, r.sort(0).values
        if len(f) != len(r):
            n = min(len(f), len(r))
            f, r = (v[torch.linspace(0, len(v) - 1, n, device=v.device).round().long()] for v in (f, r))
        total = total + (f - r).abs().mean()
    return total
