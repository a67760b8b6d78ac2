"""Run logs: `metrics.csv` (step, epoch, split, name, value) and TensorBoard events in the run folder.

On resume the CSV is cut back to the rows of steps the checkpoint had reached (and any half-written
last line of a killed run is dropped), so a resumed run's log reads as if it had never stopped.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from tunesmith.io.atomic import write_atomic

HEADER = ["step", "epoch", "split", "name", "value"]


class RunLog:
    """Appends metric rows to RUN_DIR/metrics.csv and, when available, TensorBoard scalars."""

    def __init__(self, run_dir: Path, resume_step: int | None = None) -> None:
        self.path = run_dir / "metrics.csv"
        _rewrite_kept_rows(self.path, resume_step)
        self.handle = self.path.open("a", newline="")
        self.writer = csv.writer(self.handle)
        self.tensorboard = _tensorboard(run_dir / "tensorboard")

    def log(self, step: int, epoch: int, split: str, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self.writer.writerow([step, epoch, split, name, f"{value:.6g}"])
            if self.tensorboard is not None:
                self.tensorboard.add_scalar(f"{split}/{name}", value, step)
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()
        if self.tensorboard is not None:
            self.tensorboard.close()


def _rewrite_kept_rows(path: Path, resume_step: int | None) -> None:
    """Write the header plus the complete rows with step <= resume_step (all rows when not resuming
    and the file is new: just the header)."""
    rows: list[list[str]] = []
    if resume_step is not None and path.is_file():
        text = path.read_text()
        complete = text[: text.rfind("\n") + 1]  # a killed writer may leave a partial last line
        rows = [r for r in csv.reader(io.StringIO(complete)) if len(r) == len(HEADER) and r[0].isdigit()]
        rows = [r for r in rows if int(r[0]) <= resume_step]
    buffer = io.StringIO()
    csv.writer(buffer).writerows([HEADER, *rows])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, buffer.getvalue().encode())


def _tensorboard(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional: metrics.csv holds everything
        return None
    return SummaryWriter(str(folder))
