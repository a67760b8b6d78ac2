"""Figures of the evaluation report, each returned as PNG bytes (matplotlib, Agg backend, no display).

Piano rolls come from `tunesmith.io.plot.plot_score` when that module is installed; otherwise a plain
roll is drawn here. Every figure is small (about 30 kB) because the HTML report inlines them all.
"""

from __future__ import annotations

import csv
import io
import textwrap
from pathlib import Path

import numpy as np
from symusic import Score

from tunesmith.core.constants import PITCH_NAMES
from tunesmith.evaluation.compare import FeatureComparison
from tunesmith.evaluation.density import binned_kde, scott_bandwidth
from tunesmith.evaluation.timeline import bar_edges, notes

DPI = 72
REFERENCE_COLOR, GENERATED_COLOR, INTER_COLOR = "#1f77b4", "#d62728", "#7f7f7f"
# Labels of metrics.NOTE_LENGTH_CLASSES: whole, half, quarter, 8th, 16th, dotted ..., triplets.
NOTE_LENGTH_LABELS = ("1", "1/2", "1/4", "1/8", "1/16", "3/4", "3/8", "3/16", "3/32", "1/3", "1/6", "1/12")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    # Fixed margins instead of bbox_inches="tight", which draws every figure twice.
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.2, top=0.85, wspace=0.25)
    fig.savefig(buffer, format="png", dpi=DPI)
    _pyplot().close(fig)
    return buffer.getvalue()


def piano_roll_png(score: Score, title: str = "") -> bytes:
    """A piano roll of `score`: `tunesmith.io.plot.score_png` if available, else `simple_piano_roll_png`."""
    try:
        from tunesmith.io.plot import score_png
    except ImportError:
        return simple_piano_roll_png(score, title)
    return score_png(score)


def simple_piano_roll_png(score: Score, title: str = "") -> bytes:
    """Notes as bars (x: quarters, y: MIDI pitch), one colour per track, thin lines at bar lines."""
    plt = _pyplot()
    table = notes(score)
    fig, ax = plt.subplots(figsize=(9, 3))
    tpq = score.ticks_per_quarter
    colors = plt.get_cmap("tab10")
    for track in np.unique(table["track"]):
        mask = table["track"] == track
        start, end = table["start"][mask] / tpq, table["end"][mask] / tpq
        ax.bar(start, 0.8, width=end - start, bottom=table["pitch"][mask] - 0.4, align="edge",
               color=colors(int(track) % 10), linewidth=0)
    if len(table["end"]):
        for edge in bar_edges(score, int(table["end"].max())):
            ax.axvline(edge / tpq, color="#cccccc", linewidth=0.5, zorder=0)
    ax.set_xlabel("quarters")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title, fontsize=9)
    return _png(fig)


def feature_png(feature: FeatureComparison, generated_label: str = "generated") -> bytes:
    """Left: the feature's values, reference vs generated (histograms, or mean histograms for vectors).

    Right: Yang & Lerch's picture, KDEs of the intra-reference, intra-generated and inter-set distances.
    """
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 2.6))
    _values_panel(left, feature, generated_label)
    _distances_panel(right, feature, generated_label)
    title = f"{feature.name}   OA = {feature.overlap_area:.3f}   KL = {feature.kl_divergence:.3f}"
    fig.suptitle(title, fontsize=9)
    return _png(fig)


def _values_panel(ax, feature: FeatureComparison, generated_label: str) -> None:
    ref, gen = feature.reference, feature.generated
    if feature.is_scalar:
        values = np.concatenate([ref[:, 0], gen[:, 0]])
        bins = np.histogram_bin_edges(values, bins=20) if len(values) else 10
        sets = ((ref, REFERENCE_COLOR, "reference"), (gen, GENERATED_COLOR, generated_label))
        for rows, color, label in sets:
            if len(rows):  # an empty set has no density to draw
                ax.hist(rows[:, 0], bins=bins, density=True, alpha=0.5, color=color, label=label)
        ax.set_xlabel("value")
    elif ref.shape[1] == 144 and len(ref) and len(gen):  # a 12 x 12 transition matrix
        diff = (gen.mean(axis=0) - ref.mean(axis=0)).reshape(12, 12)
        limit = max(float(np.abs(diff).max()), 1e-9)
        ax.imshow(diff, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_xticks(range(12), PITCH_NAMES, fontsize=6)
        ax.set_yticks(range(12), PITCH_NAMES, fontsize=6)
        ax.set_title(f"mean {generated_label} - mean reference (red: more)", fontsize=8)
    else:
        x = np.arange(ref.shape[1])
        for rows, offset, color, label in ((ref, -0.2, REFERENCE_COLOR, "reference"),
                                           (gen, 0.2, GENERATED_COLOR, generated_label)):
            if len(rows):
                ax.bar(x + offset, rows.mean(axis=0), width=0.4, color=color, alpha=0.7, label=label)
        if ref.shape[1] == 12:
            ax.set_xticks(x, PITCH_NAMES if "pitch" in feature.name else NOTE_LENGTH_LABELS, fontsize=6)
    _legend(ax)


def _legend(ax) -> None:
    if ax.get_legend_handles_labels()[0]:  # a panel with nothing drawn gets no empty legend box
        ax.legend(fontsize=7)


def _distances_panel(ax, feature: FeatureComparison, generated_label: str) -> None:
    curves = ((feature.intra_reference, REFERENCE_COLOR, "intra reference"),
              (feature.intra_generated, GENERATED_COLOR, f"intra {generated_label}"),
              (feature.inter, INTER_COLOR, "inter"))
    samples = [c[0] for c in curves if len(c[0])]
    if not samples:
        note = textwrap.fill(feature.note or "no distances", 40)
        ax.text(0.5, 0.5, note, ha="center", va="center", fontsize=8)
        return
    joined = np.concatenate(samples)
    span = max(joined.max() - joined.min(), 1e-9)
    grid = np.linspace(joined.min() - 0.1 * span, joined.max() + 0.1 * span, 600)
    for distances, color, label in curves:
        if len(distances) >= 2:
            bandwidth = max(scott_bandwidth(distances), span / 100)  # the floor of density.py
            ax.plot(grid, binned_kde(distances, grid, bandwidth), color=color, label=label)
    ax.set_xlabel("distance")
    _legend(ax)


def read_metrics_csv(path: Path) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """Training's `metrics.csv` (step, epoch, split, name, value) as (split, name) -> (steps, values)."""
    series: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with Path(path).open(newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                point = (float(row["step"]), float(row["value"]))
            except (KeyError, TypeError, ValueError):
                continue  # a half-written last line of a running training
            series.setdefault((row.get("split", ""), row.get("name", "")), []).append(point)
    return {key: (np.array([p[0] for p in points]), np.array([p[1] for p in points]))
            for key, points in series.items()}


def learning_curves_png(path: Path, title: str = "") -> bytes | None:
    """One panel per metric name, one line per split, against the training step; None if the file is empty."""
    series = read_metrics_csv(path)
    names = sorted({name for _, name in series})
    if not names:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 2.6), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for (split, metric), (steps, values) in sorted(series.items()):
            if metric == name:
                ax.plot(steps, values, marker="." if len(steps) < 30 else None, label=split)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    return _png(fig)


def models_feature_png(name: str, reference: np.ndarray, models: dict[str, np.ndarray]) -> bytes:
    """Scalar feature values of the reference and of each model, as overlaid step histograms."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 2.4))
    columns = [reference[:, 0]] + [rows[:, 0] for rows in models.values()]
    joined = np.concatenate(columns)
    bins = np.histogram_bin_edges(joined, bins=20) if len(joined) else 10
    ax.hist(reference[:, 0], bins=bins, density=True, color="#bbbbbb", label="reference")
    for label, rows in models.items():
        if len(rows):
            ax.hist(rows[:, 0], bins=bins, density=True, histtype="step", linewidth=1.5, label=label)
    ax.set_title(name, fontsize=9)
    ax.legend(fontsize=7)
    return _png(fig)
