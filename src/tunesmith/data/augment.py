"""Transposition augmentation on Scores (drums untouched), kept inside the MIDI pitch range."""

from __future__ import annotations

from symusic import Score

from tunesmith.core.score import pitch_range, transpose


def transpositions(score: Score, max_shift: int, low: int = 0, high: int = 127) -> list[Score]:
    """The score shifted by every semitone in [-max_shift, +max_shift] that keeps its pitched notes
    within [low, high]; shift 0 (the original) comes first."""
    span = pitch_range(score)
    shifts = [0] + [s for s in range(-max_shift, max_shift + 1) if s != 0]
    if span is None:
        return [score]
    return [transpose(score, s) if s else score for s in shifts if low <= span[0] + s and span[1] + s <= high]
