"""MidiNet's two quality metrics on melody bars, usable on any model's output (torch-free).

Bars are (n, 16, 128) one-hot arrays of the `bars` representation (an all-zero row is a rest); any
Score becomes bars through `scores_to_bars`, so pieces from every family can be measured.

1. Pitch-class histogram KL (`phrase_pitch_class_kl`): PCH = share of sounding steps in each of the 12
   pitch classes, summed over a set; `KL(PCH_real || PCH_generated)` with both histograms clipped to
   [1e-10, 1] (`density.pitch_class_kl`, the seed's epsilon), for whole phrases and for their first
   and second halves (the seed: bars 0-3 and 4-7 of 8-bar phrases). For Scores of any length,
   `compare.pitch_class_kl_halves` computes the same from note durations.
2. Autoencoder metric (`autoencoder_metric`): with an autoencoder trained on real bars
   (`models/bar_autoencoder.py`, passed in as two numpy functions so this module needs no torch):
   mean reconstruction error (MSE per cell) of real and of generated bars, and the Frechet distance
   between the Gaussians fitted to their latent codes (`density.frechet_distance`); plus a PCA
   scatter of both sets of codes (`latent_scatter_png`).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from symusic import Score

from tunesmith.core.errors import SkipFile
from tunesmith.evaluation.density import PCH_EPSILON, frechet_distance, pitch_class_kl
from tunesmith.io.atomic import write_atomic

BarsFn = Callable[[np.ndarray], np.ndarray]


def scores_to_bars(representation, scores: Sequence[Score]) -> list[np.ndarray]:
    """Each score as (n_bars, T, 128) bars; scores the representation cannot read are left out."""
    out = []
    for score in scores:
        try:
            bars = representation.encode(score)
        except SkipFile:
            continue
        if len(bars):
            out.append(np.asarray(bars, np.float32))
    return out


def bars_pitch_class_histogram(bars: np.ndarray) -> np.ndarray:
    """(..., T, 128) bars -> (12,) share of sounding steps per pitch class C..B (NaN if all rests)."""
    counts = np.asarray(bars, float).reshape(-1, 128).sum(axis=0)
    folded = np.bincount(np.arange(128) % 12, weights=counts, minlength=12)
    return folded / folded.sum() if folded.sum() > 0 else np.full(12, np.nan)


def phrase_pitch_class_kl(real: np.ndarray, generated: np.ndarray,
                          epsilon: float = PCH_EPSILON) -> dict[str, float]:
    """KL(PCH_real || PCH_generated) of phrase sets (n, n_bars, T, 128) and (m, n_bars', T, 128):
    "whole", "first_half" (bars [0, n_bars / 2)) and "second_half" (the rest), in nats."""
    out = {}
    for label, part in (("whole", slice(None)), ("first_half", "first"), ("second_half", "second")):
        r, g = _half(real, part), _half(generated, part)
        out[label] = pitch_class_kl(bars_pitch_class_histogram(r), bars_pitch_class_histogram(g), epsilon)
    return out


def _half(phrases: np.ndarray, part: slice | str) -> np.ndarray:
    if isinstance(part, slice):
        return phrases
    middle = phrases.shape[1] // 2
    return phrases[:, :middle] if part == "first" else phrases[:, middle:]


def autoencoder_metric(real: np.ndarray, generated: np.ndarray, encode: BarsFn, errors: BarsFn) -> dict:
    """Reconstruction MSE (mean per bar) of real and generated bars (n, T, 128), and the Frechet
    distance between their latent codes. Also returns the codes ("latent_real", "latent_generated")."""
    real, generated = np.asarray(real).reshape(-1, *real.shape[-2:]), np.asarray(generated)
    generated = generated.reshape(-1, *generated.shape[-2:])
    if len(real) < 2 or len(generated) < 2:
        raise ValueError("the autoencoder metric needs at least 2 real and 2 generated bars")
    latent_real, latent_generated = encode(real), encode(generated)
    return {
        "recon_mse_real": float(np.mean(errors(real))),
        "recon_mse_generated": float(np.mean(errors(generated))),
        "frechet": frechet_distance(latent_real, latent_generated),
        "latent_real": latent_real,
        "latent_generated": latent_generated,
    }


def pca_fit(data: np.ndarray, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and top-k principal axes (k, d) of the rows of `data` (SVD of the centred data)."""
    mean = data.mean(axis=0)
    _, _, vt = np.linalg.svd(data - mean, full_matrices=False)
    return mean, vt[:k]


def latent_scatter_png(real: np.ndarray, generated: np.ndarray, path: Path | str, title: str = "") -> Path:
    """Scatter of real and generated latent codes on the real codes' first two principal axes (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mean, axes = pca_fit(np.asarray(real, float))
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for codes, label, color in ((real, "real", "tab:blue"), (generated, "generated", "tab:orange")):
        xy = (np.asarray(codes, float) - mean) @ axes.T
        ax.scatter(xy[:, 0], xy[:, 1], s=6, alpha=0.45, label=f"{label} ({len(codes)})", color=color)
    ax.set_xlabel("PC 1 of real codes")
    ax.set_ylabel("PC 2 of real codes")
    ax.set_title(title or "autoencoder latent space")
    ax.legend(loc="best")
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())
    return Path(path)
