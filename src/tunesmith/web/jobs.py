"""A bounded job queue with one worker thread: what keeps the web studio's CPU use and memory in hand.

`JobQueue.submit(work)` queues a job (server-made uuid id) or raises `QueueFull` when `max_waiting`
jobs already wait; one worker thread runs the jobs in order. A job's `work(job)` reports its stage and
progress through `job.report(...)` and calls `job.check_time()` often: past its time limit that raises
`JobTimeout`, and the job ends as failed with one sentence. Finished jobs are kept (with their files)
until `max_kept` newer ones have finished; then their folder is deleted.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.core.errors import UserError

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """The queue holds its maximum of waiting jobs."""


class JobTimeout(Exception):
    """A job ran past its time limit."""


@dataclass
class Job:
    """One generation job: its state as the status endpoint reports it, and its files."""

    id: str
    folder: Path
    time_limit_s: float
    status: str = "queued"  # queued | running | done | failed
    stage: str = "waiting in the queue"
    progress: float = 0.0  # 0..1
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)  # file id -> path (server-made names only)
    started: float | None = None
    finished: float | None = None

    def report(self, stage: str, progress: float | None = None) -> None:
        """Set the stage (a short phrase) and, when given, the progress (0..1)."""
        self.stage = stage
        if progress is not None:
            self.progress = min(1.0, max(self.progress, progress))

    def check_time(self) -> None:
        """Raise JobTimeout once the job has run longer than its limit."""
        if self.started is not None and time.monotonic() - self.started > self.time_limit_s:
            raise JobTimeout(f"the job ran past its time limit of {self.time_limit_s:g} s; ask for fewer pieces "
                             "or bars")

    def public(self) -> dict[str, Any]:
        """What the status endpoint returns."""
        return {"id": self.id, "status": self.status, "stage": self.stage, "progress": round(self.progress, 3),
                "error": self.error, **self.result}


Work = Callable[[Job], dict[str, Any]]


class JobQueue:
    """Jobs run one at a time on one worker thread; at most `max_waiting` wait behind the running one."""

    def __init__(self, root: Path, max_waiting: int = 4, time_limit_s: float = 120.0, max_kept: int = 32):
        self.root, self.max_waiting, self.time_limit_s, self.max_kept = Path(root), max_waiting, time_limit_s, max_kept
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._waiting: queue.Queue[tuple[Job, Work] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="tunesmith-jobs", daemon=True)
        self._thread.start()

    def check_room(self) -> None:
        """QueueFull when `max_waiting` jobs already wait (cheap: callers ask before preparing a job)."""
        if self._waiting.qsize() >= self.max_waiting:
            raise QueueFull(f"the generation queue is full ({self.max_waiting} jobs waiting); "
                            "try again when one has finished")

    def submit(self, work: Work) -> Job:
        """Queue `work`; QueueFull when `max_waiting` jobs already wait."""
        with self._lock:
            self.check_room()
            job_id = uuid.uuid4().hex
            job = Job(job_id, self.root / job_id, self.time_limit_s)
            self._jobs[job_id] = job
            self._waiting.put((job, work))
        return job

    def get(self, job_id: str) -> Job | None:
        """The job with this id, or None (ids are only ever looked up, never used as paths)."""
        with self._lock:
            return self._jobs.get(job_id)

    def waiting(self) -> int:
        return self._waiting.qsize()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker after the running job and delete every job folder."""
        self._waiting.put(None)
        self._thread.join(timeout)
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self) -> None:
        while (item := self._waiting.get()) is not None:
            job, work = item
            self._run_one(job, work)
            self._forget_old()

    def _run_one(self, job: Job, work: Work) -> None:
        job.status, job.started = "running", time.monotonic()
        job.report("starting")
        try:
            job.folder.mkdir(parents=True, exist_ok=True)
            job.result = work(job)
            job.status, job.progress = "done", 1.0
            job.report("done")
        except (UserError, JobTimeout) as error:
            job.status, job.error = "failed", str(error)
        except Exception as error:  # noqa: BLE001 (a bug in one job must not stop the worker)
            log.exception("job %s failed", job.id)
            job.status, job.error = "failed", f"internal error ({error.__class__.__name__}); see the server log"
        finally:
            job.finished = time.monotonic()
            if job.status == "failed":
                job.report("failed")

    def _forget_old(self) -> None:
        with self._lock:
            finished = [j for j in self._jobs.values() if j.finished is not None]
            for job in finished[: max(0, len(finished) - self.max_kept)]:
                del self._jobs[job.id]
                shutil.rmtree(job.folder, ignore_errors=True)
