"""What an overlapping area means on *this* reference: the real-vs-real ceiling, the random-notes floor,
and the features that separate the two.

Yang & Lerch's OA is relative: Bach chorales against Bach chorales score about 0.95, not 1, and some
features score high even for random notes (a qualified-note rate is 1.0 for any note on a grid), which
lifts every set's mean. So each reference is calibrated before a model is judged against it:

- **ceiling**: one half of the reference (even-numbered pieces) compared with the other half;
- **floor**: the first half compared with random notes of the reference's own pitch range and note
  density (uniform pitches, 8th-note grid, 4/4), passed through the model's representation when the
  generated set names one, so the floor is measured in the same terms as the model;
- **separating features**: those whose OA drops by more than `margin` from ceiling to floor. Only they
  enter the headline mean; a feature that scores random notes as real music says nothing about a model.

`tunesmith evaluate` / `compare` and `benchmarks/quality.py` all use this module, so their headlines agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from symusic import Score

from tunesmith.core.score import bar_starts, make_track, new_score, note_table
from tunesmith.evaluation.compare import SetComparison, compare_sets

MARGIN = 0.05  # OA points a feature must lose from real-vs-real to random-vs-real to count as separating
MIN_PIECES = 4  # two halves of two pieces each: fewer cannot estimate a distance distribution
MAX_RANDOM_BARS = 32  # random pieces are as long as the reference's median piece, up to this many bars


@dataclass(frozen=True)
class Headline:
    """Mean OA over the separating features, and the weakest of them (name, OA)."""

    oa: float
    weakest: str
    weakest_oa: float


@dataclass
class Calibration:
    """Ceiling and floor comparisons of one reference, and the features that separate them."""

    ceiling: SetComparison
    floor: SetComparison
    separating: frozenset[str]

    def headline(self, comparison: SetComparison) -> Headline:
        return headline(comparison, self.separating)

    def summary(self) -> dict:
        """JSON-ready: ceiling and floor OA over the separating features, and per feature."""
        per_feature = {f.name: {"ceiling": _finite(f.overlap_area),
                                "floor": _finite(self.floor.feature(f.name).overlap_area),
                                "separates": f.name in self.separating}
                       for f in self.ceiling.features}
        return {"ceiling_oa": _finite(self.headline(self.ceiling).oa),
                "floor_oa": _finite(self.headline(self.floor).oa),
                "margin": MARGIN, "separating_features": sorted(self.separating), "features": per_feature}


def headline(comparison: SetComparison, names: frozenset[str] | set[str]) -> Headline:
    """Mean OA of `comparison` over the features in `names`, and the weakest of them."""
    areas = {f.name: f.overlap_area for f in comparison.features
             if f.name in names and not math.isnan(f.overlap_area)}
    if not areas:
        return Headline(float("nan"), "-", float("nan"))
    weakest = min(areas, key=areas.get)
    return Headline(float(np.mean(list(areas.values()))), weakest, float(areas[weakest]))


def calibrate(reference: Sequence[Score], record: dict | None = None, seed: int = 0,
              margin: float = MARGIN) -> Calibration | None:
    """Calibrate a reference set (scores already in the model's terms, if any). `record`: the generated
    set's provenance (`generation.json`), so the random floor passes through the same representation.
    None when the reference has fewer than `MIN_PIECES` pieces or no notes."""
    reference = [s for s in reference if s.note_num()]
    if len(reference) < MIN_PIECES:
        return None
    first, second = reference[0::2], reference[1::2]
    randoms = _in_model_terms(random_like(reference, len(first), seed), record)
    ceiling, floor = compare_sets(first, second), compare_sets(first, randoms)
    return Calibration(ceiling, floor, separating_features(ceiling, floor, margin))


def separating_features(ceiling: SetComparison, floor: SetComparison, margin: float = MARGIN) -> frozenset[str]:
    """Features whose OA drops by more than `margin` from real-vs-real to random-vs-real."""
    return frozenset(f.name for f in ceiling.features
                     if not math.isnan(f.overlap_area)
                     and not math.isnan(floor.feature(f.name).overlap_area)
                     and f.overlap_area - floor.feature(f.name).overlap_area > margin)


def random_like(reference: Sequence[Score], n: int, seed: int = 0) -> list[Score]:
    """`n` pieces of random notes with the reference's pitch range (5th-95th percentile), notes per bar
    (median) and piece length (median bars, at most `MAX_RANDOM_BARS`): uniform pitches on an 8th grid,
    durations of 1-4 eighths, 4/4, one track."""
    pitches = np.concatenate([note_table(s)["pitch"] for s in reference])
    low, high = (int(v) for v in np.percentile(pitches, [5, 95]))
    bars = [max(1, len(bar_starts(s))) for s in reference]
    per_bar = float(np.median([s.note_num() / b for s, b in zip(reference, bars, strict=True)]))
    n_bars = int(min(MAX_RANDOM_BARS, np.median(bars)))
    count = max(1, round(per_bar * n_bars))
    rng = np.random.default_rng(seed)
    pieces = []
    for _ in range(n):
        score = new_score(time_signature=(4, 4))
        eighth = score.ticks_per_quarter // 2
        start = np.sort(rng.integers(0, 8 * n_bars, count)) * eighth
        duration = rng.integers(1, 5, count) * eighth
        score.tracks.append(make_track(rng.integers(low, high + 1, count), start, duration))
        pieces.append(score)
    return pieces


def _in_model_terms(scores: list[Score], record: dict | None) -> list[Score]:
    if not record:
        return scores
    from tunesmith.evaluation.provenance import reference_in_model_terms
    from tunesmith.evaluation.runs import PieceSet

    ids = [f"random-{i}" for i in range(len(scores))]
    return reference_in_model_terms(PieceSet("random notes", ids, scores), record).scores


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 6)
