"""Transposition on Scores (drums untouched): augmentation kept inside the MIDI pitch range, and key
normalisation (every piece to C major or A minor, its key estimated from its pitch classes)."""

from __future__ import annotations

import numpy as np
from symusic import Score

from tunesmith.core.score import note_table, pitch_range, transpose


def transpositions(score: Score, max_shift: int, low: int = 0, high: int = 127) -> list[Score]:
    """The score shifted by every semitone in [-max_shift, +max_shift] that keeps its pitched notes
    within [low, high]; shift 0 (the original) comes first."""
    span = pitch_range(score)
    shifts = [0] + [s for s in range(-max_shift, max_shift + 1) if s != 0]
    if span is None:
        return [score]
    return [transpose(score, s) if s else score for s in shifts if low <= span[0] + s and span[1] + s <= high]


# Krumhansl & Kessler (1982) key profiles: how well each pitch class fits a major / minor key on C.
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def estimate_key(score: Score) -> tuple[int, str] | None:
    """(tonic pitch class 0-11, "major" | "minor") of the best-correlating Krumhansl-Kessler profile
    for the duration-weighted pitch-class histogram of the pitched notes; None without pitched notes."""
    table = note_table(score)
    pitched = ~table["is_drum"]
    if not pitched.any():
        return None
    histogram = np.bincount(table["pitch"][pitched] % 12, weights=table["duration"][pitched], minlength=12)
    best = max(((np.corrcoef(histogram, np.roll(profile, tonic))[0, 1], tonic, mode)
                for mode, profile in (("major", _MAJOR), ("minor", _MINOR)) for tonic in range(12)),
               key=lambda candidate: np.nan_to_num(candidate[0], nan=-2.0))
    return best[1], best[2]


def to_common_key(score: Score) -> Score:
    """The score transposed to C major or A minor (its estimated key), by the smallest shift (-6..+5)."""
    key = estimate_key(score)
    if key is None:
        return score
    tonic, mode = key
    target = 0 if mode == "major" else 9
    shift = (target - tonic + 6) % 12 - 6
    return transpose(score, shift) if shift else score
