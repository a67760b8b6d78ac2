"""Run logs: `metrics.csv` (step, epoch, split, name, value) and TensorBoard events in the run folder.

On resume the CSV is cut back to the rows of steps the checkpoint had reached (and any half-written
last line of a killed run is dropped), so a resumed run's log reads as if it had never stopped.

One case needs more than the cut: the step of the checkpoint itself. Rows logged at that step
before the checkpoint was written are kept (the resumed run does not repeat them); rows logged
after it (an end-of-epoch validation on a step that was also a checkpoint step, killed before the
epoch's own checkpoint) are repeated by the resumed run. So a row for a (step, split) already in
the file replaces the old ones instead of being added twice. Every rewrite is atomic.
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
        rows = kept_rows(self.path, resume_step)
        _write_rows(self.path, rows)
        # (step, split) pairs at the checkpoint's step: the resumed run may log them again.
        self.repeatable = {(int(r[0]), r[2]) for r in rows if int(r[0]) == resume_step}
        self._open()
        purge = None if resume_step is None else resume_step + 1  # hide TensorBoard events after it
        self.tensorboard = _tensorboard(run_dir / "tensorboard", purge)

    def _open(self) -> None:
        self.handle = self.path.open("a", newline="")
        self.writer = csv.writer(self.handle)

    def log(self, step: int, epoch: int, split: str, metrics: dict[str, float]) -> None:
        if (step, split) in self.repeatable:
            self._drop(step, split)
        for name, value in metrics.items():
            self.writer.writerow([step, epoch, split, name, f"{value:.6g}"])
            if self.tensorboard is not None:
                self.tensorboard.add_scalar(f"{split}/{name}", value, step)
        self.handle.flush()

    def _drop(self, step: int, split: str) -> None:
        """Rewrite the file without the rows of (step, split), which are about to be logged again."""
        self.repeatable.discard((step, split))
        self.handle.close()
        rows = [r for r in kept_rows(self.path, None, keep_all=True) if (int(r[0]), r[2]) != (step, split)]
        _write_rows(self.path, rows)
        self._open()

    def close(self) -> None:
        self.handle.close()
        if self.tensorboard is not None:
            self.tensorboard.close()


def kept_rows(path: Path, resume_step: int | None, keep_all: bool = False) -> list[list[str]]:
    """The complete data rows of `path` with step <= resume_step (every complete row with `keep_all`;
    none when `resume_step` is None, i.e. a new run, or the file is missing)."""
    if not path.is_file() or (resume_step is None and not keep_all):
        return []
    # A killed writer may leave a partial last line; a crashed file system, NUL bytes or garbage.
    text = path.read_bytes().replace(b"\0", b"").decode("utf-8", "replace")
    complete = text[: text.rfind("\n") + 1]
    rows = [r for r in csv.reader(io.StringIO(complete)) if len(r) == len(HEADER) and r[0].isdigit()]
    return rows if keep_all else [r for r in rows if int(r[0]) <= resume_step]


def _write_rows(path: Path, rows: list[list[str]]) -> None:
    """Write the header plus `rows` to `path`, atomically."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows([HEADER, *rows])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, buffer.getvalue().encode())


def _tensorboard(folder: Path, purge_step: int | None):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional: metrics.csv holds everything
        return None
    return SummaryWriter(str(folder), purge_step=purge_step)


class NullLog:
    """The log of a torchrun rank other than 0: rank 0 alone writes the run's files."""

    def log(self, step: int, epoch: int, split: str, metrics: dict[str, float]) -> None:
        """Nothing: the metrics are averaged over ranks and written by rank 0."""

    def close(self) -> None:
        """Nothing to close."""
