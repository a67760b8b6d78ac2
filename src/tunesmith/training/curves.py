"""Learning curves of a run: RUN_DIR/metrics.csv -> RUN_DIR/learning_curves.png.

One panel per metric that has validation values (loss, and e.g. precision / recall / f1 / density for
the piano-roll models), x = epoch: the validation value at the end of each epoch, and the mean of the
training values logged during that epoch.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path

from tunesmith.io.atomic import write_atomic

PANEL_ORDER = ("loss", "nll", "precision", "recall", "f1", "density")


def read_curves(metrics_csv: Path) -> dict[str, dict[str, dict[int, float]]]:
    """metric -> split ("train" / "valid") -> epoch -> value (train: mean over the epoch's log lines).

    Training lines carry the epoch in progress; validation lines are written after the epoch counter
    moved on, so a validation value at epoch e describes the model after e epochs (plotted at e)."""
    sums: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    with Path(metrics_csv).open(newline="") as handle:
        for row in csv.DictReader(handle):
            epoch = int(row["epoch"]) + (1 if row["split"] == "train" else 0)
            sums[(row["name"], row["split"], epoch)].append(float(row["value"]))
    curves: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for (name, split, epoch), values in sums.items():
        curves[name][split][epoch] = values[-1] if split == "valid" else sum(values) / len(values)
    return curves


def plot_learning_curves(run_dir: Path) -> Path | None:
    """Write RUN_DIR/learning_curves.png; None when there is nothing to plot yet (or no matplotlib)."""
    run_dir = Path(run_dir)
    if not (run_dir / "metrics.csv").is_file():
        return None
    curves = read_curves(run_dir / "metrics.csv")
    names = [n for n in PANEL_ORDER if "valid" in curves.get(n, {})]
    names += sorted(n for n in curves if n not in names and "valid" in curves[n] and n != "target_density")
    if not names:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.0), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for split, style in (("train", "-"), ("valid", "o-")):
            points = sorted(curves[name].get(split, {}).items())
            if points:
                ax.plot(*zip(*points, strict=True), style, label=split, markersize=3)
        if name == "density" and "target_density" in curves:  # what a perfect model would show
            target = sorted(curves["target_density"]["valid"].items())
            ax.plot(*zip(*target, strict=True), "k--", label="target")
        ax.set_title(name)
        ax.set_xlabel("epoch")
    axes[0][0].legend()
    fig.tight_layout()
    path = run_dir / "learning_curves.png"
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())
    return path
