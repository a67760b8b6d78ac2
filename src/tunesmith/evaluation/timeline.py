"""Time-line helpers shared by the metrics: note ends, bars, per-bar overlaps, skylines.

All times are in ticks of the score being measured. A note *sounds* over `[start, end)` with
`end = start + max(duration, 1)`, so a zero-length note (common for drums) still marks the instant
it is struck.
"""

from __future__ import annotations

import numpy as np
from symusic import Score

from tunesmith.core.score import bar_starts, note_table

# Longest bar we ever need to look past the last note for: 64 quarters (a 64/4 bar).
_MAX_BAR_QUARTERS = 64


def notes(score: Score, pitched: bool | None = None) -> dict[str, np.ndarray]:
    """The note table of `score` plus an `end` column (ticks).

    `pitched=True` drops drum notes, `pitched=False` keeps only them, None keeps all."""
    table = note_table(score)
    if pitched is not None:
        keep = ~table["is_drum"] if pitched else table["is_drum"]
        table = {k: v[keep] for k, v in table.items()}
    table["end"] = table["start"] + np.maximum(table["duration"], 1)
    return table


def bar_edges(score: Score, end_tick: int) -> np.ndarray:
    """Bar lines from 0 up to and including the one closing the bar that holds `end_tick - 1` (ticks).

    `len(edges) - 1` is the number of bars; bar `i` spans `[edges[i], edges[i + 1])`. Time
    signatures follow `core.score.bar_starts` (4/4 when the score has none).
    """
    end_tick = max(int(end_tick), 1)
    reach = end_tick + 1 + _MAX_BAR_QUARTERS * score.ticks_per_quarter
    starts = bar_starts(score, end_tick=reach)
    n_bars = max(1, int(np.searchsorted(starts, end_tick, side="left")))
    return starts[: n_bars + 1]


def spans_per_cell(start: np.ndarray, end: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, ...]:
    """Every (note, cell) pair where note `[start, end)` overlaps cell `[edges[i], edges[i+1])`.

    Returns `(note_index, cell_index, overlap_ticks)`, three arrays of one length. Cells are bars,
    beats or any other partition of time given by its sorted `edges`.
    """
    first = np.searchsorted(edges, start, side="right") - 1
    last = np.searchsorted(edges, end - 1, side="right") - 1
    last = np.minimum(last, len(edges) - 2)
    count = np.maximum(last - first + 1, 0)
    note_index = np.repeat(np.arange(len(start)), count)
    offsets = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    cell = first[note_index] + offsets
    overlap = np.minimum(end[note_index], edges[cell + 1]) - np.maximum(start[note_index], edges[cell])
    return note_index, cell, overlap


def active_pitch_profile(table: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Piecewise-constant number of distinct sounding pitches: `(segment_ticks, pitch_count)`.

    Notes of one pitch that overlap (in any track) are merged first, so a doubled pitch counts once,
    as in a binary piano roll.
    """
    times, deltas = [], []
    for pitch in np.unique(table["pitch"]):
        mask = table["pitch"] == pitch
        s, e = union_intervals(table["start"][mask], table["end"][mask])
        times += [s, e]
        deltas += [np.ones(len(s), np.int64), -np.ones(len(e), np.int64)]
    if not times:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    times_all, deltas_all = np.concatenate(times), np.concatenate(deltas)
    unique, inverse = np.unique(times_all, return_inverse=True)
    counts = np.cumsum(np.bincount(inverse, weights=deltas_all).astype(np.int64))
    return np.diff(unique), counts[:-1]


def union_intervals(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge overlapping or touching intervals `[start, end)`; returns the sorted disjoint union."""
    order = np.argsort(start, kind="stable")
    start, end = start[order], end[order]
    reach = np.maximum.accumulate(end)
    new_group = np.ones(len(start), bool)
    new_group[1:] = start[1:] > reach[:-1]
    group_end_index = np.append(np.flatnonzero(new_group)[1:] - 1, len(start) - 1)
    return start[new_group], reach[group_end_index]


def skylines(table: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Per track, the highest pitch at each distinct onset, in time order (one melody line per track).

    For a monophonic track this is simply its pitch sequence; for a polyphonic one it keeps the top
    voice, the usual reading of "the melody" (Uitdenbogerd & Zobel 1998, "skyline").
    """
    lines = []
    for track in np.unique(table["track"]):
        mask = table["track"] == track
        start, pitch = table["start"][mask], table["pitch"][mask]
        order = np.lexsort((-pitch, start))
        start, pitch = start[order], pitch[order]
        first_of_onset = np.ones(len(start), bool)
        first_of_onset[1:] = start[1:] != start[:-1]
        lines.append(pitch[first_of_onset].astype(np.int64))
    return lines


def onset_vectors(start: np.ndarray, edges: np.ndarray, tpq: int, steps_per_quarter: int) -> np.ndarray:
    """Binary onset grid per bar: shape (n_bars, longest bar in steps); True where a note starts.

    A note's position is its offset from its bar line rounded to the nearest of `steps_per_quarter`
    steps per quarter note (clipped into the bar).
    """
    bar_steps = np.round(np.diff(edges) * steps_per_quarter / tpq).astype(np.int64)
    grid = np.zeros((len(edges) - 1, max(int(bar_steps.max()), 1)), bool)
    bar = np.clip(np.searchsorted(edges, start, side="right") - 1, 0, len(edges) - 2)
    step = np.round((start - edges[bar]) * steps_per_quarter / tpq).astype(np.int64)
    grid[bar, np.clip(step, 0, bar_steps[bar] - 1)] = True
    return grid
