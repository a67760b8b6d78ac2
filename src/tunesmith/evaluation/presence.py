"""Whether each instrument group plays where it should: continuations measured bar by bar against the real ones.

For aligned pieces (a generated continuation of a real primer and the real piece, bar i against bar i):
- `presence_recall`: of the bars where the reference has a group, the share where the generated piece has it;
  split by `primed`, whether the reference's primer has the group: a continuation can follow a part it hears,
  but not foresee one that enters later (in the vgm band set's held-out pieces, 22 % of piano's continuation
  bars come after a piano-less 4-bar primer);
- `presence_precision`: of the bars a group plays in, the share where the reference has it too (a part that
  plays everywhere has recall 1 and the precision of chance);
- `copy_primer_presence`: both figures for the rule "every group the primer has plays in every new bar, no
  other": what following the primer alone reaches, the yardstick for a model's recall;
- `presence_transitions`: per 2-bar window, the chance that a playing group stops in the next window and that
  a silent one enters: a part that comes and goes more often than real parts flickers.

Bars follow the pieces' time signatures (`bar_activity`). Torch-free.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from symusic import Score

from tunesmith.core.constants import MULTITRACK_GROUPS
from tunesmith.evaluation.multitrack_metrics import bar_activity

NAN = float("nan")
Activity = np.ndarray  # (5, n_bars) bool: which groups play in each bar


def presence_recall(generated: Sequence[Score], reference: Sequence[Score], skip_bars: int = 0,
                    primed: bool | None = None) -> dict[str, float]:
    """Per group: #(bars where both play) / #(bars where the reference plays), over aligned pairs of
    pieces from bar `skip_bars` (e.g. after a primer); NaN for a group the reference never plays there.
    `primed` True / False: per group, only the pairs whose reference does / does not play it before
    `skip_bars`."""
    hits, wanted, _ = _counts(_activity_pairs(generated, reference), skip_bars, primed)
    return _ratio(hits, wanted)


def presence_precision(generated: Sequence[Score], reference: Sequence[Score], skip_bars: int = 0
                       ) -> dict[str, float]:
    """Per group: #(bars where both play) / #(bars where the generated piece plays), aligned as
    `presence_recall`; NaN for a group the generated pieces never play."""
    hits, _, played = _counts(_activity_pairs(generated, reference), skip_bars)
    return _ratio(hits, played)


def copy_primer_presence(reference: Sequence[Score], skip_bars: int) -> dict[str, dict[str, float]]:
    """{"recall", "precision"} of the rule that plays each group in every bar from `skip_bars` on exactly
    when the reference plays it before `skip_bars`."""
    pairs = []
    for ref in reference:
        real = bar_activity(ref)[0]
        heard = real[:, :skip_bars].any(1, keepdims=True)
        pairs.append((np.concatenate([real[:, :skip_bars], np.repeat(heard, real.shape[1] - skip_bars, 1)], 1), real))
    hits, wanted, played = _counts(pairs, skip_bars)
    return {"recall": _ratio(hits, wanted), "precision": _ratio(hits, played)}


def presence_transitions(scores: Sequence[Score], first_bar: int, window_bars: int = 2
                         ) -> dict[str, dict[str, float]]:
    """{"stop": per group P(silent in window k+1 | plays in window k), "enter": P(plays in k+1 | silent in
    k)}, over consecutive `window_bars`-bar windows of each piece, from the window that ends at bar
    `first_bar` (a primer's last window) on; NaN where a group never plays / never rests."""
    counts = np.zeros((len(MULTITRACK_GROUPS), 2, 2))  # [group, plays at k, plays at k+1]
    for score in scores:
        plays = bar_activity(score)[0][:, max(first_bar - window_bars, 0):]
        n = plays.shape[1] // window_bars
        windows = plays[:, : n * window_bars].reshape(len(MULTITRACK_GROUPS), n, window_bars).any(-1)
        for now, after in ((0, 0), (0, 1), (1, 0), (1, 1)):
            counts[:, now, after] += ((windows[:, :-1] == now) & (windows[:, 1:] == after)).sum(1)
    return {"stop": _ratio(counts[:, 1, 0], counts[:, 1].sum(1)), "enter": _ratio(counts[:, 0, 1], counts[:, 0].sum(1))}


def _activity_pairs(generated: Sequence[Score], reference: Sequence[Score]) -> Iterable[tuple[Activity, Activity]]:
    """(generated, reference) bar activity of each aligned pair of pieces."""
    return ((bar_activity(g)[0], bar_activity(r)[0]) for g, r in zip(generated, reference, strict=True))


def _counts(pairs: Iterable[tuple[Activity, Activity]], skip_bars: int, primed: bool | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group (5,): bars where both play, bars where the reference plays, bars where the generated
    piece plays, from bar `skip_bars` (the shorter piece's bars); with `primed`, per group only the pairs
    whose reference plays (True) / does not play (False) it before `skip_bars`."""
    hits, wanted, played = (np.zeros(len(MULTITRACK_GROUPS)) for _ in range(3))
    for gen, real in pairs:
        g_plays, r_plays = gen[:, skip_bars:], real[:, skip_bars:]
        n = min(g_plays.shape[1], r_plays.shape[1])
        counted = np.ones(len(MULTITRACK_GROUPS)) if primed is None else real[:, :skip_bars].any(1) == primed
        hits += counted * (g_plays[:, :n] & r_plays[:, :n]).sum(1)
        wanted += counted * r_plays[:, :n].sum(1)
        played += counted * g_plays[:, :n].sum(1)
    return hits, wanted, played


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> dict[str, float]:
    """Per group name: numerator / denominator, NaN where the denominator is 0."""
    return {name: float(numerator[g] / denominator[g]) if denominator[g] else NAN
            for g, name in enumerate(MULTITRACK_GROUPS)}
