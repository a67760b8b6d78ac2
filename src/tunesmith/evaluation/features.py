"""Feature tables for sets of pieces: per metric, one row per piece; per-instrument-group metrics; halves.

A *feature table* maps a feature name to an array of shape (n_pieces, d): d = 1 for scalar metrics,
12 or 144 for histograms and transition matrices (flattened). Rows of pieces where the feature is
undefined are NaN. Multitrack sets also get MuseGAN-style per-group features named `group/metric`
(groups of LPD-5: piano, guitar, bass, strings, drums; `core.constants.program_group`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from symusic import Score

from tunesmith.core.constants import MULTITRACK_GROUPS, program_group
from tunesmith.core.score import copy_meta, trim
from tunesmith.evaluation.metrics import METRICS
from tunesmith.evaluation.timeline import bar_edges, notes

# The metrics MuseGAN reports per track, computed per instrument group on multitrack sets.
GROUP_METRICS = (
    "empty_bar_rate", "used_pitch_classes_per_bar", "qualified_note_rate", "polyphony", "pitch_range",
)
DRUM_GROUP_METRICS = ("empty_bar_rate", "drum_pattern_consistency")


def feature_table(scores: Sequence[Score], names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Feature name -> (n_pieces, d) float array of `METRICS` values (NaN rows where undefined)."""
    names = tuple(names or METRICS)
    rows: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for score in scores:
        for name in names:
            rows[name].append(np.atleast_1d(np.asarray(METRICS[name](score), float)).ravel())
    return {name: _stack(values) for name, values in rows.items()}


def _stack(values: list[np.ndarray]) -> np.ndarray:
    return np.vstack(values) if values else np.zeros((0, 1))


def split_by_group(score: Score) -> dict[str, Score]:
    """The tracks of `score` gathered by LPD-5 instrument group (only groups that have notes)."""
    groups: dict[str, Score] = {}
    for track in score.tracks:
        if len(track.notes) == 0:
            continue
        group = program_group(track.program, track.is_drum)
        groups.setdefault(group, copy_meta(score)).tracks.append(track.copy())
    return groups


def groups_in(scores: Sequence[Score]) -> list[str]:
    """LPD-5 groups that hold notes in at least two pieces of `scores`, in `MULTITRACK_GROUPS` order."""
    counts = dict.fromkeys(MULTITRACK_GROUPS, 0)
    for score in scores:
        for group in split_by_group(score):
            counts[group] += 1
    return [group for group, count in counts.items() if count >= 2]


def group_feature_table(scores: Sequence[Score], groups: Sequence[str]) -> dict[str, np.ndarray]:
    """`group/metric` -> (n_pieces, 1) for each group in `groups`; NaN where a piece lacks the group.

    The per-group metrics are `GROUP_METRICS` (`DRUM_GROUP_METRICS` for drums), measured on the
    piece's tracks of that group only. An absent group is NaN (not "all empty"), so a model that drops
    the bass is seen in the drop of defined pieces rather than hidden in a rate.
    """
    table: dict[str, list[float]] = {}
    for score in scores:
        parts = split_by_group(score)
        for group in groups:
            for name in DRUM_GROUP_METRICS if group == "drums" else GROUP_METRICS:
                value = METRICS[name](parts[group]) if group in parts else float("nan")
                table.setdefault(f"{group}/{name}", []).append(float(value))
    return {name: np.asarray(values, float)[:, None] for name, values in table.items()}


def halves(score: Score) -> tuple[Score, Score]:
    """The piece cut at its middle bar line: (bars [0, B/2), bars [B/2, B)), both starting at tick 0.

    MidiNet evaluates bars 0-3 and 4-7 of its 8-bar songs; this is the same cut for any length. A
    piece of one bar is cut at half its length.
    """
    table = notes(score)
    end = int(table["end"].max()) if len(table["end"]) else 1
    edges = bar_edges(score, end)
    n_bars = len(edges) - 1
    middle = int(edges[n_bars // 2]) if n_bars >= 2 else max(end // 2, 1)
    return trim(score, 0, middle), trim(score, middle, max(end, middle + 1))


def duration_pitch_class_histogram(score: Score) -> np.ndarray:
    """Share of sounding time (note-quarters) in each pitch class, pitched notes only; shape (12,).

    `h[c] = sum of durations of notes with pitch % 12 == c / sum of all durations`. For a monophonic
    melody on a 16th grid this is MidiNet's PCH (the argmax pitch class of each step, counted and
    normalised). NaN vector without pitched notes.
    """
    table = notes(score, pitched=True)
    if len(table["pitch"]) == 0:
        return np.full(12, np.nan)
    weights = (table["end"] - table["start"]).astype(float)
    hist = np.bincount(table["pitch"] % 12, weights=weights, minlength=12)
    return hist / hist.sum()


def set_pitch_class_histogram(scores: Sequence[Score]) -> np.ndarray:
    """Mean of the pieces' `duration_pitch_class_histogram` (pieces without notes skipped); NaN if none."""
    hists = [h for h in (duration_pitch_class_histogram(s) for s in scores) if not np.isnan(h).any()]
    return np.mean(hists, axis=0) if hists else np.full(12, np.nan)
