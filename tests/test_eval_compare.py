"""Set comparison: KDE, overlapping area, KL, Frechet distance, PCH KL, hooks, per-group features."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tunesmith.core.score import make_track, new_score
from tunesmith.evaluation import density
from tunesmith.evaluation.compare import compare_feature, compare_sets, pitch_class_kl_halves
from tunesmith.evaluation.features import duration_pitch_class_histogram, groups_in, halves


def test_kde_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    samples = np.random.default_rng(0).normal(size=200)
    grid = np.linspace(-4, 4, 50)
    ours = density.kde(samples, grid, density.scott_bandwidth(samples))
    np.testing.assert_allclose(ours, stats.gaussian_kde(samples)(grid), rtol=1e-10)


def test_overlap_and_kl_of_two_gaussians():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 4000), rng.normal(1, 1, 4000)
    # N(0,1) vs N(1,1): OA = 2 Phi(-1/2) = 0.6171, KL = (mu difference)^2 / 2 = 0.5 nats
    assert density.overlapping_area(a, b) == pytest.approx(0.6171, abs=0.03)
    assert density.kl_divergence(a, b) == pytest.approx(0.5, abs=0.08)
    assert density.overlapping_area(a, a) == pytest.approx(1.0, abs=1e-3)
    assert density.kl_divergence(a, a) == pytest.approx(0.0, abs=1e-9)
    assert density.overlapping_area(a, a + 100) < 1e-6


def test_constant_samples():
    zeros = np.zeros(10)
    assert density.overlapping_area(zeros, zeros) == 1.0
    assert density.kl_divergence(zeros, zeros) == 0.0
    assert density.overlapping_area(zeros, np.full(10, 0.5)) < 1e-6  # narrow floor bandwidth, far apart


def test_pairwise_distances_counts_and_values():
    a = np.array([[0.0], [1.0], [3.0]])
    np.testing.assert_allclose(density.pairwise_distances(a), [1, 3, 2])
    b = np.array([[0.0, 0.0], [3.0, 4.0]])
    np.testing.assert_allclose(density.pairwise_distances(b, b), [0, 5, 5, 0])
    many = np.arange(300.0)[:, None]
    assert len(density.pairwise_distances(many, max_pairs=1000)) == 1000


def test_frechet_distance_by_hand():
    # 1-D: N(0, 2) vs N(3, 8) (sample variances, ddof 1): 3^2 + 2 + 8 - 2 sqrt(2 * 8) = 11
    assert density.frechet_distance([[-1.0], [1.0]], [[1.0], [5.0]]) == pytest.approx(11.0)
    # 2-D: covariances (2/3) I and (8/3) I, means 0 and (1, 2): 5 + 2 (2/3 + 8/3 - 2 * 4/3) = 5 + 4/3
    a = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]], float)
    assert density.frechet_distance(a, 2 * a + [1, 2]) == pytest.approx(5 + 4 / 3)
    assert density.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_matches_sqrtm_formula():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(50, 4)), rng.normal(size=(60, 4)) @ rng.normal(size=(4, 4)) + 1
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(ca + cb - 2 * linalg.sqrtm(ca @ cb).real)
    assert density.frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_pitch_class_kl_with_midinet_epsilon():
    p = np.zeros(12)
    p[0] = 1.0
    # KL(one class || uniform) = log 12, plus 11 clipped classes of 1e-10 log(1e-10 / (1/12)) each
    expected = math.log(12) + 11 * 1e-10 * math.log(1e-10 * 12)
    assert density.pitch_class_kl(p, np.full(12, 1 / 12)) == pytest.approx(expected, rel=1e-12)
    half = np.zeros(12)
    half[:2] = 0.5
    # a class missing from the generated set costs p log(p / 1e-10)
    assert density.pitch_class_kl(half, p) == pytest.approx(0.5 * math.log(0.5) + 0.5 * math.log(0.5 / 1e-10))


def _piece(pitches, tpq=4, track_programs=(0,), step=4):
    s = new_score(tpq=tpq)
    for program in track_programs:
        start = np.arange(len(pitches)) * step
        s.tracks.append(make_track(pitches, start, [step] * len(pitches), program=program))
    return s


def test_halves_and_duration_histogram():
    s = _piece([60, 62, 64, 65, 67, 69, 71, 72] * 2, step=8)  # 16 half notes = 8 bars of 4/4
    first, second = halves(s)
    assert len(first.tracks[0].notes) == 8 and len(second.tracks[0].notes) == 8
    assert second.tracks[0].notes[0].time == 0
    s2 = new_score(tpq=4)
    s2.tracks.append(make_track([60, 67], [0, 4], [12, 4]))  # C three times as long as G
    expected = np.zeros(12)
    expected[[0, 7]] = [0.75, 0.25]
    np.testing.assert_allclose(duration_pitch_class_histogram(s2), expected)


def test_pitch_class_kl_halves_sees_a_change_in_the_second_half():
    real = [_piece([60, 64, 67, 72] * 4, step=4)] * 3
    drifting = [_piece([60, 64, 67, 72] * 2 + [61, 66, 68, 70] * 2, step=4)] * 3
    kl = pitch_class_kl_halves(real, drifting)
    assert kl["first_half"] == pytest.approx(0.0, abs=1e-9)
    assert kl["second_half"] > 10 and kl["whole"] > 0.1


def test_compare_feature_drops_undefined_rows():
    ref = np.array([[1.0], [np.nan], [2.0], [3.0]])
    result = compare_feature("x", ref, np.array([[np.nan]]))
    assert result.note and math.isnan(result.overlap_area)
    result = compare_feature("x", ref, np.array([[2.0], [np.nan]]))
    assert len(result.reference) == 3 and len(result.generated) == 1
    assert len(result.intra_reference) == 3 and len(result.inter) == 3


def test_compare_sets_hooks_and_summary_is_strict_json():
    import json

    rng = np.random.default_rng(3)
    ref = [_piece(list(rng.integers(55, 80, 16))) for _ in range(6)]
    gen = [_piece(list(rng.integers(55, 80, 16))) for _ in range(5)]

    def embed(scores):
        return np.array([[len(s.tracks[0].notes), s.tracks[0].notes[0].pitch] for s in scores], float)

    result = compare_sets(ref, gen, embed_fn=embed, nll_fn=lambda s: 1.5)
    assert result.nll == {"reference": 1.5, "generated": 1.5}
    assert result.frechet_distance == pytest.approx(density.frechet_distance(embed(ref), embed(gen)))
    text = json.dumps(result.summary(), allow_nan=False)
    assert "pitch_class_entropy" in text and 0 < result.mean_overlap_area <= 1


def test_multitrack_sets_get_per_group_features():
    ref = [_piece([60, 62, 64, 65], track_programs=(0, 33)) for _ in range(3)]  # piano + bass
    gen = [_piece([60, 62, 64, 65], track_programs=(0,)) for _ in range(3)]  # the bass is missing
    assert groups_in(ref) == ["piano", "bass"]
    result = compare_sets(ref, gen)
    bass = result.feature("bass/pitch_range")
    assert len(bass.reference) == 3 and len(bass.generated) == 0 and bass.note
    assert result.feature("piano/polyphony").overlap_area == 1.0  # identical constant values
    assert not any(f.name.startswith("piano/") for f in compare_sets(gen, gen).features)


def test_binned_kde_matches_exact_kde():
    rng = np.random.default_rng(4)
    samples = np.concatenate([rng.exponential(1.0, 3000), rng.normal(6, 0.3, 500)])
    h = density.scott_bandwidth(samples)
    grid = np.linspace(samples.min() - 4 * h, samples.max() + 4 * h, int(10 * (np.ptp(samples) + 8 * h) / h))
    exact = density.kde(samples, grid, h)
    assert np.abs(density.binned_kde(samples, grid, h) - exact).max() < 1e-3 * exact.max()
