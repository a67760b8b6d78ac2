"""Five-instrument pieces from a `band` checkpoint: the chain of `models/band.py` -> five-track Scores.

`generate.py` hands a band model here (it writes in its own layout, the `multitrack` representation
at the model's grid, whatever representation entry the checkpoint holds). Output tracks: piano
(program 0), guitar (24), bass (32), strings (48) and drums (the drum channel), in that order, each
present even when it stays silent, so every piece has the same five tracks; 4/4 at 120 qpm, or the
primer's tempo. `note_density` measures how full each window is (the drift-to-silence check).
"""

from __future__ import annotations

import numpy as np
import torch
from symusic import Score

from tunesmith.core.errors import SkipFile, UserError
from tunesmith.core.score import bar_line_after, cut_at
from tunesmith.models.base import SamplePlan
from tunesmith.representations.multitrack import MultitrackConfig, MultitrackRepresentation


def band_representation(model) -> MultitrackRepresentation:
    """The layout a band model writes: five groups at its grid."""
    return MultitrackRepresentation(MultitrackConfig(steps_per_quarter=model.config.steps_per_quarter))


def band_scores(model, request, primer: Score | None, count: int, generator: torch.Generator) -> list[Score]:
    """`count` pieces: the primer's bars (when given) then `request.bars` new 4/4 bars, exactly."""
    rep = band_representation(model)
    context = None
    if primer is not None:
        check_four_four(primer)
        try:
            context = rep.encode(primer)
        except SkipFile as reason:
            raise UserError(f"the primer cannot be read as multitrack: {reason}") from None
        if not context.any():
            raise UserError("the primer holds no notes in the bars kept as context (--primer-bars) for the "
                            "band model to continue")
    plan = SamplePlan(count, request.bars, context, None, request.sampling)
    bar = 4 * model.config.steps_per_quarter
    primer_bars = -(-context.shape[1] // bar) if context is not None else 0
    pieces = [rep.decode(roll) for roll in model.sample(plan, generator)]
    return [cut_at(p, bar_line_after(p, request.bars + primer_bars)) for p in pieces]


def check_four_four(primer: Score) -> None:
    """UserError for a primer whose meter is not 4/4: the band model only knows 4/4 windows."""
    for signature in primer.time_signatures:
        if (signature.numerator, signature.denominator) != (4, 4):
            raise UserError(f"the band model writes 4/4 bars; the primer is in "
                            f"{signature.numerator}/{signature.denominator}")


def note_density(roll: np.ndarray, window: int) -> np.ndarray:
    """Note onsets per step in each window of a (5, T, 128) velocity roll, per group: (n_windows, 5)."""
    roll = np.asarray(roll)
    prev = np.zeros_like(roll)
    prev[:, 1:] = roll[:, :-1]
    onsets = (roll > 0) & (roll != prev)
    onsets[-1] = roll[-1] > 0  # drums: every hit
    n = roll.shape[1] // window
    per_step = onsets[:, : n * window].sum(axis=2).reshape(roll.shape[0], n, window)
    return per_step.mean(axis=2).T
