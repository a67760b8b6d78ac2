"""Rhythm metrics over bars and beats: groove consistency and drum-pattern consistency.

Pure functions on a `Score` in ticks, NaN when undefined; see `evaluation/metrics.py` for the
conventions and the reference keys [MG] (MuseGAN) and [JT] (Jazz Transformer).
"""

from __future__ import annotations

import numpy as np
from symusic import Score

from tunesmith.evaluation.timeline import bar_edges, notes, onset_vectors


def groove_consistency(score: Score, steps_per_quarter: int = 16) -> float:
    """One minus the mean Hamming distance between the onset patterns of neighbouring bars.

    `1 - 1/(B-1) sum_i d(G_i, G_i+1) / L`, with `G_i` the binary onset vector of bar i on a grid of
    `steps_per_quarter` steps per quarter (all tracks, drums included), `L` the bar length in steps and
    B the number of bars; 1 means every bar has the same rhythm. [JT] uses 64 steps per 4/4 bar, the
    default here. NaN below two bars. Equals `muspy.groove_consistency(music, L)` when the score's
    ticks per quarter equal `steps_per_quarter` and the last note does not end on a bar line.
    """
    table = notes(score)
    if len(table["start"]) == 0:
        return float("nan")
    edges = bar_edges(score, int(table["end"].max()))
    if len(edges) < 3:
        return float("nan")
    grid = onset_vectors(table["start"], edges, score.ticks_per_quarter, steps_per_quarter)
    bar_steps = np.round(np.diff(edges) * steps_per_quarter / score.ticks_per_quarter)
    hamming = (grid[:-1] != grid[1:]).sum(axis=1)
    # With a time-signature change the longer bar of the pair sets the length.
    return float(1 - np.mean(hamming / np.maximum(bar_steps[:-1], bar_steps[1:])))


def _pattern_positions(tpq: int, meter: str) -> np.ndarray:
    """Tick offsets within a quarter that belong to the duple (16ths) or triple (8th triplets) pattern."""
    parts = (4, 2) if meter == "duple" else (3,)
    positions = {0}
    for part in parts:
        if tpq % part == 0:
            positions.update(range(0, tpq, tpq // part))
    return np.asarray(sorted(positions))


def drum_pattern_consistency(score: Score) -> float:
    """Largest share of drum onsets on a duple (16th-note) or a triple (8th-triplet) grid.

    `max_{meter} #(drum notes with start mod tpq in pattern(meter)) / #drum notes`. [MG] "DP";
    equals `muspy.drum_pattern_consistency`. Onsets are compared exactly: quantize the score first
    (`core.score.quantize`) when it was played live. NaN without drum notes.
    """
    start = notes(score, pitched=False)["start"]
    if len(start) == 0:
        return float("nan")
    tpq = score.ticks_per_quarter
    rates = [np.isin(start % tpq, _pattern_positions(tpq, meter)).mean() for meter in ("duple", "triple")]
    return float(max(rates))
