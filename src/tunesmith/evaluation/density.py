"""Numerical core of the set comparisons: distances, Gaussian KDE, overlap, divergences, Frechet distance.

Pure numpy (no scipy), so that the numbers do not depend on an optional dependency; the tests check the
KDE against `scipy.stats.gaussian_kde` where scipy is installed.
"""

from __future__ import annotations

import numpy as np

GRID_STEPS_PER_BANDWIDTH = 10  # density grid for the overlap and KL integrals: error far below sampling noise
MAX_GRID_POINTS = 20_000
PCH_EPSILON = 1e-10  # MidiNet's clip value for pitch-class histograms before the KL divergence
KDE_EPSILON = 1e-12  # floor of a KDE density before its log is taken (KL of far tails stays finite)
_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy 2 renamed trapz; both are supported


def pairwise_distances(a: np.ndarray, b: np.ndarray | None = None, max_pairs: int = 20_000,
                       seed: int = 0) -> np.ndarray:
    """Euclidean distances between rows: all pairs i<j of `a` (intra-set) or all (i, j) of a x b (inter-set).

    `a`, `b`: (n, d) feature rows (d = 1 gives absolute differences). When there are more than
    `max_pairs` pairs a fixed random subset of that size is returned (seeded, so reports are
    reproducible): the KDE does not get better with more, and the cost stays linear.
    """
    a = np.asarray(a, float).reshape(len(a), -1)
    if b is None:
        i, j = np.triu_indices(len(a), k=1)
        left, right = a, a
    else:
        b = np.asarray(b, float).reshape(len(b), -1)
        i, j = (ix.ravel() for ix in np.meshgrid(np.arange(len(a)), np.arange(len(b)), indexing="ij"))
        left, right = a, b
    if len(i) > max_pairs:
        pick = np.random.default_rng(seed).choice(len(i), size=max_pairs, replace=False)
        i, j = i[pick], j[pick]
    return np.linalg.norm(left[i] - right[j], axis=1)


def scott_bandwidth(samples: np.ndarray) -> float:
    """Scott's rule for a 1-D Gaussian KDE: `h = std(samples, ddof=1) * n^(-1/5)` (scipy's default)."""
    n = len(samples)
    return float(np.std(samples, ddof=1) * n ** (-0.2)) if n > 1 else 0.0


def kde(samples: np.ndarray, grid: np.ndarray, bandwidth: float) -> np.ndarray:
    """Gaussian kernel density of `samples` evaluated on `grid`: `mean_i N(x; s_i, h^2)`."""
    z = (grid[None, :] - np.asarray(samples, float)[:, None]) / bandwidth
    return np.exp(-0.5 * z**2).mean(axis=0) / (bandwidth * np.sqrt(2 * np.pi))


def binned_kde(samples: np.ndarray, grid: np.ndarray, bandwidth: float) -> np.ndarray:
    """`kde` on an evenly spaced grid, by linear binning and one convolution (Wand 1994).

    Each sample splits its unit weight between its two neighbouring grid points; the counts are then
    convolved with the Gaussian kernel sampled on the grid. Cost O(n + m k) instead of O(n m) (n samples,
    m points, k kernel points); with a spacing of a tenth of the bandwidth (as `_joint_densities` uses)
    it differs from `kde` by under 1e-3 of the peak density. Samples must lie on the grid.
    """
    step = grid[1] - grid[0]
    position = (np.asarray(samples, float) - grid[0]) / step
    left = np.clip(np.floor(position).astype(np.int64), 0, len(grid) - 1)
    right_weight = position - left
    counts = np.bincount(left, weights=1 - right_weight, minlength=len(grid))[: len(grid)]
    counts += np.bincount(left + 1, weights=right_weight, minlength=len(grid) + 1)[: len(grid)]
    half = min(int(np.ceil(6 * bandwidth / step)), len(grid) - 1)
    offsets = np.arange(-half, half + 1) * step
    kernel = np.exp(-0.5 * (offsets / bandwidth) ** 2) / (bandwidth * np.sqrt(2 * np.pi))
    return np.convolve(counts, kernel)[half : half + len(grid)] / len(position)


def _joint_densities(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Both KDEs on one grid covering both samples plus 4 bandwidths; None when all values are equal.

    Each bandwidth is Scott's, floored at 1/100 of the joint span of the data, so a feature that is
    constant in one set (e.g. no empty bars in any chorale) still gets a proper, narrow density. The grid
    spacing is a tenth of the smaller bandwidth (at most `MAX_GRID_POINTS` points, about 5,000 in practice).
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    span = hi - lo
    if span <= 0:
        return None
    ha, hb = (max(scott_bandwidth(x), span / 100) for x in (a, b))
    pad = 4 * max(ha, hb)
    points = int(np.ceil((span + 2 * pad) * GRID_STEPS_PER_BANDWIDTH / min(ha, hb))) + 1
    grid = np.linspace(lo - pad, hi + pad, min(points, MAX_GRID_POINTS))
    return grid, binned_kde(a, grid, ha), binned_kde(b, grid, hb)


def overlapping_area(a: np.ndarray, b: np.ndarray) -> float:
    """Overlapping area of the Gaussian KDEs of two samples: `OA = integral of min(p_a(x), p_b(x)) dx`.

    1 for identical distributions, 0 for disjoint ones (Yang & Lerch 2020, section 3.3). Unlike MGEval,
    which integrates over the range of the data only, the integral covers the tails too, so identical
    samples give 1 (and not about 0.9). Two samples of one and the same value give 1.
    """
    joint = _joint_densities(a, b)
    if joint is None:
        return 1.0
    grid, pa, pb = joint
    return float(np.clip(_trapezoid(np.minimum(pa, pb), grid), 0.0, 1.0))


def kl_divergence(a: np.ndarray, b: np.ndarray) -> float:
    """KL divergence of the KDE of `a` from that of `b`, in nats: `integral p_a log(p_a / p_b) dx`.

    Both densities are evaluated on one common grid and floored at `KDE_EPSILON` before the log
    (MGEval evaluates the two densities on two different grids, which is not a divergence).
    0 when the two samples hold one and the same value.
    """
    joint = _joint_densities(a, b)
    if joint is None:
        return 0.0
    grid, pa, pb = joint
    pa, pb = np.maximum(pa, KDE_EPSILON), np.maximum(pb, KDE_EPSILON)
    return float(max(_trapezoid(pa * np.log(pa / pb), grid), 0.0))


def pitch_class_kl(real: np.ndarray, generated: np.ndarray, epsilon: float = PCH_EPSILON) -> float:
    """MidiNet's metric: `KL(real || generated) = sum_c p_c log(p_c / q_c)` over 12 pitch classes, in nats.

    Both histograms are clipped to [epsilon, 1] first (MidiNet: 1e-10) and not renormalised, as in
    MidiNet's use of `scipy.special.kl_div`; an empty class in the generated set therefore costs
    `p_c log(p_c / 1e-10)` (about 23 p_c) instead of infinity.
    """
    p = np.clip(np.asarray(real, float), epsilon, 1.0)
    q = np.clip(np.asarray(generated, float), epsilon, 1.0)
    return float(np.sum(p * np.log(p / q)))


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a positive semi-definite matrix (negative rounding errors clipped)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two sets of embeddings (rows), as in FID.

    `d^2 = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2)` with means mu and covariances S
    (ddof 1) of `a` (n, d) and `b` (m, d); Dowson & Landau 1982, Heusel et al. 2017. The trace term uses
    the symmetric form, whose eigenvalues are those of `S_a S_b`, so no complex square root appears.
    Returns d^2 (the quantity FID reports), in squared embedding units.
    """
    a, b = np.atleast_2d(np.asarray(a, float)), np.atleast_2d(np.asarray(b, float))
    if a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise ValueError("frechet_distance needs two sets of at least 2 embeddings of one dimension")
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root_a = _sqrt_psd(cov_a)
    cross = _sqrt_psd(root_a @ cov_b @ root_a)
    mean_term = np.sum((a.mean(axis=0) - b.mean(axis=0)) ** 2)
    return float(mean_term + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(cross))
