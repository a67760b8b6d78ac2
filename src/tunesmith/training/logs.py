"""Run logs: `metrics.csv` (step, epoch, split, name, value) and TensorBoard events in the run folder."""

from __future__ import annotations

import csv
from pathlib import Path


class RunLog:
    """Appends metric rows to RUN_DIR/metrics.csv and, when available, TensorBoard scalars."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "metrics.csv"
        new = not self.path.exists()
        self.handle = self.path.open("a", newline="")
        self.writer = csv.writer(self.handle)
        if new:
            self.writer.writerow(["step", "epoch", "split", "name", "value"])
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


def _tensorboard(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional: metrics.csv holds everything
        return None
    return SummaryWriter(str(folder))
