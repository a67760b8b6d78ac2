"""Learning curves of a run: RUN_DIR/metrics.csv -> RUN_DIR/learning_curves.png.

The figure is the one `evaluate` puts in its report (`evaluation.plots.learning_curves_png`: one panel
per metric, one line per split, against the optimizer step), written here atomically beside the run.
"""

from __future__ import annotations

from pathlib import Path

from tunesmith.evaluation.plots import learning_curves_png
from tunesmith.io.atomic import write_atomic


def plot_learning_curves(run_dir: Path) -> Path | None:
    """Write RUN_DIR/learning_curves.png; None when there is nothing to plot yet."""
    run_dir = Path(run_dir)
    if not (run_dir / "metrics.csv").is_file():
        return None
    png = learning_curves_png(run_dir / "metrics.csv", title=run_dir.name)
    if png is None:
        return None
    path = run_dir / "learning_curves.png"
    write_atomic(path, png)
    return path
