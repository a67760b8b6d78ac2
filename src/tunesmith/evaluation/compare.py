"""Set versus set: Yang & Lerch's distance-distribution comparison, MidiNet's PCH KL, embeddings, NLL.

For each feature (`evaluation/metrics.py`, plus per-instrument-group features on multitrack sets):

1. intra-set distances: between every pair of reference pieces (and, for the plots, of generated pieces);
2. inter-set distances: between every reference piece and every generated piece;
3. a Gaussian KDE of each distance distribution;
4. the overlapping area OA(intra_reference, inter) and KL(intra_reference || inter).

If the generated pieces are distributed like the reference, a generated piece is as far from the
reference pieces as those are from each other, so OA is near 1 and KL near 0 (Yang & Lerch, "On the
evaluation of generative models in music", Neural Computing and Applications 32, 2020, section 3).

Hooks keep this module free of torch: `embed_fn(scores) -> (n, d) array` (e.g. the MidiNet autoencoder's
latent) gives a Frechet distance between real and generated embeddings; `nll_fn(score) -> float` (mean
negative log-likelihood per token or frame of a likelihood model) gives the mean NLL of each set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from symusic import Score

from tunesmith.evaluation import density
from tunesmith.evaluation.features import (
    feature_table,
    group_feature_table,
    groups_in,
    halves,
    set_pitch_class_histogram,
)

EmbedFn = Callable[[list[Score]], np.ndarray]
NllFn = Callable[[Score], float]


@dataclass
class FeatureComparison:
    """One feature across the two sets. Values are feature rows (n, d); distances are 1-D arrays."""

    name: str
    reference: np.ndarray
    generated: np.ndarray
    intra_reference: np.ndarray = field(default_factory=lambda: np.zeros(0))
    intra_generated: np.ndarray = field(default_factory=lambda: np.zeros(0))
    inter: np.ndarray = field(default_factory=lambda: np.zeros(0))
    overlap_area: float = float("nan")
    kl_divergence: float = float("nan")
    note: str = ""

    @property
    def is_scalar(self) -> bool:
        return self.reference.shape[1] == 1

    def summary(self) -> dict:
        """JSON-ready numbers: means (a list for histograms), stds of scalars, OA, KL, set sizes, note."""
        out = {"name": self.name, "n_reference": len(self.reference), "n_generated": len(self.generated)}
        for label, rows in (("reference", self.reference), ("generated", self.generated)):
            mean = rows.mean(axis=0) if len(rows) else np.full(rows.shape[1], np.nan)
            out[f"{label}_mean"] = _clean(mean[0] if self.is_scalar else mean)
            out[f"{label}_std"] = _clean(rows[:, 0].std()) if self.is_scalar and len(rows) else None
        out |= {"overlap_area": _clean(self.overlap_area), "kl_divergence": _clean(self.kl_divergence)}
        out |= {"intra_reference_mean": _clean(_mean(self.intra_reference)),
                "inter_mean": _clean(_mean(self.inter)), "note": self.note}
        return out


@dataclass
class SetComparison:
    """Everything `compare_sets` measures; `summary()` is its JSON form."""

    n_reference: int
    n_generated: int
    features: list[FeatureComparison]
    pitch_class_kl: dict[str, float]
    frechet_distance: float | None = None
    nll: dict[str, float] | None = None

    def feature(self, name: str) -> FeatureComparison:
        return next(f for f in self.features if f.name == name)

    @property
    def mean_overlap_area(self) -> float:
        return _mean(np.asarray([f.overlap_area for f in self.features if not np.isnan(f.overlap_area)]))

    @property
    def mean_kl_divergence(self) -> float:
        return _mean(np.asarray([f.kl_divergence for f in self.features if not np.isnan(f.kl_divergence)]))

    def summary(self) -> dict:
        return {
            "n_reference": self.n_reference, "n_generated": self.n_generated,
            "mean_overlap_area": _clean(self.mean_overlap_area),
            "mean_kl_divergence": _clean(self.mean_kl_divergence),
            "pitch_class_kl": {k: _clean(v) for k, v in self.pitch_class_kl.items()},
            "pitch_class_kl_epsilon": density.PCH_EPSILON,
            "frechet_distance": _clean(self.frechet_distance), "nll": self.nll,
            "features": [f.summary() for f in self.features],
        }


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def _clean(value):
    """NaN -> None and numpy -> Python, so the JSON report is strict JSON."""
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        return [_clean(v) for v in value.tolist()]
    value = float(value)
    return None if np.isnan(value) else round(value, 6)


def compare_feature(name: str, reference: np.ndarray, generated: np.ndarray,
                    max_pairs: int = 20_000) -> FeatureComparison:
    """Yang & Lerch for one feature: rows (n, d) of each set, NaN rows dropped first."""
    reference = reference[~np.isnan(reference).any(axis=1)]
    generated = generated[~np.isnan(generated).any(axis=1)]
    result = FeatureComparison(name, reference, generated)
    if len(reference) < 2 or len(generated) < 1:
        result.note = "defined for too few pieces (needs 2 reference and 1 generated)"
        return result
    result.intra_reference = density.pairwise_distances(reference, max_pairs=max_pairs)
    result.inter = density.pairwise_distances(reference, generated, max_pairs=max_pairs)
    if len(generated) >= 2:
        result.intra_generated = density.pairwise_distances(generated, max_pairs=max_pairs)
    result.overlap_area = density.overlapping_area(result.intra_reference, result.inter)
    result.kl_divergence = density.kl_divergence(result.intra_reference, result.inter)
    return result


def pitch_class_kl_halves(reference: Sequence[Score], generated: Sequence[Score]) -> dict[str, float]:
    """MidiNet's KL(PCH_real || PCH_generated) for whole pieces and for their first and second halves.

    PCH = mean over the set of each piece's duration-weighted pitch-class histogram; epsilon
    `density.PCH_EPSILON` (1e-10, MidiNet's). Halves are cut at the middle bar line (`features.halves`).
    """
    out = {"whole": density.pitch_class_kl(set_pitch_class_histogram(reference),
                                           set_pitch_class_histogram(generated))}
    split_ref = [halves(s) for s in reference]
    split_gen = [halves(s) for s in generated]
    for index, label in enumerate(("first_half", "second_half")):
        out[label] = density.pitch_class_kl(set_pitch_class_histogram([h[index] for h in split_ref]),
                                            set_pitch_class_histogram([h[index] for h in split_gen]))
    return out


def compare_sets(reference: Sequence[Score], generated: Sequence[Score], *,
                 names: Sequence[str] | None = None, by_group: bool | None = None,
                 embed_fn: EmbedFn | None = None, nll_fn: NllFn | None = None,
                 max_pairs: int = 20_000) -> SetComparison:
    """Compare a generated set with a reference set on every feature, plus PCH KL and the optional hooks.

    `by_group`: add the per-instrument-group features (None: when the reference holds two or more
    LPD-5 groups). `embed_fn` and `nll_fn`: see the module docstring.
    """
    reference, generated = list(reference), list(generated)
    ref_table, gen_table = feature_table(reference, names), feature_table(generated, names)
    groups = groups_in(reference)
    if by_group or (by_group is None and len(groups) >= 2):
        ref_table |= group_feature_table(reference, groups)
        gen_table |= group_feature_table(generated, groups)
    features = [compare_feature(name, ref_table[name], gen_table[name], max_pairs) for name in ref_table]
    pch_kl = pitch_class_kl_halves(reference, generated)
    result = SetComparison(len(reference), len(generated), features, pch_kl)
    if embed_fn is not None:
        result.frechet_distance = density.frechet_distance(embed_fn(reference), embed_fn(generated))
    if nll_fn is not None:
        result.nll = {"reference": float(np.mean([nll_fn(s) for s in reference])),
                      "generated": float(np.mean([nll_fn(s) for s in generated]))}
    return result
