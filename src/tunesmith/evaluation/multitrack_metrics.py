"""Multitrack metrics (the MuseGAN set, per LPD-5 instrument group) and set-vs-set overlap per group.

Tracks are gathered into the five LPD-5 groups by General MIDI program (`core.constants.program_group`:
programs 0-23 piano, 24-31 guitar, 32-39 bass, everything from 40 up strings (brass, reeds, synths
included), drum channel drums). Bars follow the piece's time signatures over the whole piece, so a
group that stops early has empty bars. Per piece and group [MG] (H.-W. Dong et al., MuseGAN, AAAI 2018):

- `empty_bar_rate` (EB): share of the piece's bars in which the group plays no note (1 when absent);
- `used_pitch_classes_per_bar` (UPC): pitch classes sounding per bar, mean over the bars it plays in;
- `qualified_note_rate` (QN): share of its notes at least a 32nd long (`metrics.qualified_note_rate`);
- `drum_pattern_rate` (DP, drums): share of hits on a 16th (or 8th-triplet) grid
  (`rhythm.drum_pattern_consistency`);
- `tonal_distance` (TD) for each pair of pitched groups that both play: distance of their tonal
  centroids per bar (`metrics.tonal_distance` on the two groups' notes).

Whether each group plays where it should (continuations against real ones): `presence.py`.
`group_overlap`: the Yang & Lerch
overlapping area of each group's features (`compare.compare_sets`, per-group features), with the
real-vs-real ceiling: the same figure between two halves of the reference. Torch-free.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from symusic import Score

from tunesmith.core.constants import MULTITRACK_GROUPS, program_group
from tunesmith.core.score import copy_meta, make_track, note_table
from tunesmith.evaluation.features import groups_in, split_by_group
from tunesmith.evaluation.metrics import qualified_note_rate, tonal_distance
from tunesmith.evaluation.rhythm import drum_pattern_consistency
from tunesmith.evaluation.timeline import bar_edges, spans_per_cell
from tunesmith.io.atomic import write_atomic

log = logging.getLogger(__name__)
PITCHED = tuple(g for g in MULTITRACK_GROUPS if g != "drums")
PAIRS = tuple((a, b) for i, a in enumerate(PITCHED) for b in PITCHED[i + 1:])
NAN = float("nan")


def bar_activity(score: Score) -> tuple[np.ndarray, np.ndarray]:
    """(plays (5, n_bars) bool, pitch classes (5, n_bars, 12) bool) over the whole piece's bars."""
    table = note_table(score)
    if len(table["pitch"]) == 0:
        return np.zeros((len(MULTITRACK_GROUPS), 0), bool), np.zeros((len(MULTITRACK_GROUPS), 0, 12), bool)
    end = table["start"] + np.maximum(table["duration"], 1)
    edges = bar_edges(score, int(end.max()))
    index, cell, _ = spans_per_cell(table["start"], end, edges)
    group = np.asarray([MULTITRACK_GROUPS.index(program_group(int(p), bool(d)))
                        for p, d in zip(table["program"], table["is_drum"], strict=True)], np.int64)
    plays = np.zeros((len(MULTITRACK_GROUPS), len(edges) - 1), bool)
    plays[group[index], cell] = True
    classes = np.zeros((*plays.shape, 12), bool)
    pitched = ~table["is_drum"][index]
    classes[group[index][pitched], cell[pitched], table["pitch"][index][pitched] % 12] = True
    return plays, classes


def group_metrics(score: Score) -> dict[str, float]:
    """Every per-group metric of one piece, named `GROUP/metric` and `tonal_distance/A-B` (NaN where
    undefined: a group that does not play has no UPC, QN or DP)."""
    plays, classes = bar_activity(score)
    parts = split_by_group(score)
    out: dict[str, float] = {}
    for g, name in enumerate(MULTITRACK_GROUPS):
        out[f"{name}/empty_bar_rate"] = 1.0 - float(plays[g].mean()) if plays.shape[1] else NAN
        if name == "drums":
            out["drums/drum_pattern_rate"] = drum_pattern_consistency(parts[name]) if name in parts else NAN
            continue
        played = classes[g][plays[g]]
        out[f"{name}/used_pitch_classes_per_bar"] = float(played.sum(1).mean()) if len(played) else NAN
        out[f"{name}/qualified_note_rate"] = qualified_note_rate(parts[name]) if name in parts else NAN
    for a, b in PAIRS:
        both = a in parts and b in parts
        out[f"tonal_distance/{a}-{b}"] = tonal_distance(_merged(score, parts[a], parts[b])) if both else NAN
    return out


def _merged(score: Score, *parts: Score) -> Score:
    """One track per part (each part's tracks merged), on `score`'s meter: what the pair TD reads."""
    out = copy_meta(score)
    for part in parts:
        table = note_table(part)
        out.tracks.append(make_track(table["pitch"], table["start"], table["duration"], table["velocity"]))
    return out


def set_metrics(scores: Sequence[Score]) -> dict[str, float]:
    """The mean of each `group_metrics` value over the pieces where it is defined (NaN: nowhere)."""
    rows = [group_metrics(s) for s in scores]
    names = list(rows[0]) if rows else []
    out = {}
    for name in names:
        values = np.asarray([r[name] for r in rows], float)
        out[name] = float(np.nanmean(values)) if np.isfinite(values).any() else NAN
    return out


def group_overlap(reference: Sequence[Score], generated: Sequence[Score]) -> dict[str, float]:
    """Mean overlapping area of each group's features (plus "tonal_distance", the whole piece's),
    reference vs generated (Yang & Lerch; 1 = as close as reference pieces are to each other)."""
    from tunesmith.evaluation.compare import compare_sets

    comparison = compare_sets(reference, generated, names=("tonal_distance",), by_group=True)
    out: dict[str, list[float]] = {}
    for feature in comparison.features:
        group = feature.name.split("/")[0] if "/" in feature.name else feature.name
        if feature.overlap_area is not None and np.isfinite(feature.overlap_area):
            out.setdefault(group, []).append(float(feature.overlap_area))
    return {g: float(np.mean(v)) for g, v in out.items()}


def overlap_ceiling(reference: Sequence[Score]) -> dict[str, float]:
    """`group_overlap` between the even- and odd-numbered reference pieces: what real music scores."""
    reference = list(reference)
    return group_overlap(reference[0::2], reference[1::2])


def multitrack_report(generated: Sequence[Score], reference: Sequence[Score]) -> dict:
    """JSON-ready: per-group metrics of both sets, per-group overlap and its real-vs-real ceiling."""
    overlap, ceiling = group_overlap(reference, generated), overlap_ceiling(reference)
    return {
        "generated": set_metrics(generated), "reference": set_metrics(reference),
        "overlap_area": overlap, "overlap_area_real_vs_real": ceiling,
        "overlap_gap": {g: ceiling[g] - overlap[g] for g in overlap if g in ceiling},
        "n_generated": len(generated), "n_reference": len(reference),
    }


def write_multitrack_report(generated, reference, out: Path) -> Path | None:
    """For `tunesmith evaluate`: when both piece sets hold two or more instrument groups, write
    `multitrack_report` beside the report as `<stem>.multitrack.json` and return its path; else None."""
    if len(groups_in(generated.scores)) < 2 or len(groups_in(reference.scores)) < 2 or len(reference.scores) < 4:
        return None
    path = Path(out).with_name(Path(out).stem + ".multitrack.json")
    report = multitrack_report(generated.scores, reference.scores)
    write_atomic(path, (json.dumps(report, indent=2, allow_nan=True) + "\n").encode())
    return path
