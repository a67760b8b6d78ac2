"""Guarded parser processes: symusic runs in a child with a wall-clock and an address-space limit.

symusic is C++: a malformed file could crash it, loop or allocate without bound, and none of that
may take the caller down. `ParserPool` keeps N long-lived worker processes (plain subprocesses of
`python`, so they work from any caller, daemonic DataLoader workers and `python -` included) and
feeds each up to `depth` batches of tasks, so a worker seldom waits for the parent. The parent enforces the
time limit per task and restarts a worker that overran or died; the worker caps its own address
space once it has started. Pools are lent and kept warm (`borrow_pool`), so a process pays the
worker start-up (a few tenths of a second) once, not per file or per call.

A task carries the file's bytes (`read_midi_bytes`) or its path (`read_midi`, and ingest: the worker reads
and hashes it); results come back pickled over a socket pair. Ingest borrows pools whose workers also
share a byte ring with the parent (`rings=True`, `ring.py`): the pieces they pack cross no socket.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import NamedTuple

from tunesmith.core.errors import SkipFile
from tunesmith.io.midi import Limits
from tunesmith.io.ring import Ring, new_ring, resolve, ring_fds

log = logging.getLogger(__name__)


def usable_cores() -> int:
    """CPUs this process may run on: its affinity mask, lowered by a cgroup v2 CPU quota if any."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def cap_workers(n_workers: int) -> int:
    """Parser processes to start for a request of `n_workers`: 0 means one per usable core; more
    than the cores is capped to them with a warning (each worker costs about 10 MB and a core)."""
    cores = usable_cores()
    if n_workers > cores:
        log.warning("%d parser workers requested but only %d CPU cores are usable: using %d",
                    n_workers, cores, cores)
    return min(n_workers, cores) if n_workers > 0 else cores


# Tasks queued behind a busy worker wait in the socket's send buffer: together they may fill at most a
# quarter of it, so the parent never blocks in send() while a worker is stuck. We ask for 4 MiB; the
# kernel may give less (Linux default: about 200 KiB), and the budget follows what it gives.
SOCKET_BUFFER = 4 << 20
MESSAGE_OVERHEAD = 1024  # bytes of pickle framing counted per queued task
# Small files travel in batches: one message each way per batch, not per file (with 32 instead of 8, the
# parent of two workers spends a fifth less CPU per file). A batch holds at most BATCH_BYTES of messages
# and BATCH_COST bytes of MIDI to parse (about 10 ms), and shares one deadline; when it runs out (or the
# worker dies), each of its files is retried alone, so only a file that fails on its own is skipped.
BATCH_FILES, BATCH_BYTES, BATCH_COST = 32, 256 << 10, 1 << 20
STARTUP_SECONDS = 60.0  # a worker that has not said 'ready' by then means a broken installation


class _Task(NamedTuple):
    key: object
    message: tuple  # (key, kind, path, data) as the worker receives it
    size: int  # bytes it occupies in a socket buffer
    cost: int = 0  # bytes of MIDI the worker parses (its data, or the file's size when the caller knows it)
    solo: bool = False  # send it in a batch of its own (a retry after its batch failed)


@dataclass
class _Worker:
    process: subprocess.Popen
    conn: Connection
    ready: bool = False  # said 'ready': imports done, memory capped
    inflight: deque = field(default_factory=deque)  # (tasks, bytes) batches; the head is being parsed
    started: float = field(default_factory=time.monotonic)  # when the head batch (or start-up) began
    ring: Ring | None = None  # where it packs ingest's pieces (`ring.py`)


class ParserPool:
    """`n_workers` guarded parser processes. Use `submit`, then `poll` until `busy` is False.

    Results are `(key, ok, payload)`: ok=True with the task's result, or ok=False with the one-line
    skip reason (including 'parse timed out ...' and 'parser crashed ...').
    """

    def __init__(self, n_workers: int, limits: Limits, depth: int = 3, rings: bool = False):
        self.limits, self.depth, self.rings = limits, max(1, depth), rings
        self.queued_bytes = 0  # payload bytes of the tasks submitted and not yet answered
        self._pending: deque = deque()
        self._sent = 0  # tasks in the workers' inflight batches, counted: `backlog` is read for every file submitted
        self._n = cap_workers(max(1, n_workers))
        self._workers = [self._start() for _ in range(self._n)]

    def _start(self) -> _Worker:
        ours, theirs = socket.socketpair()
        with contextlib.suppress(OSError):
            ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
        self._queue_budget = ours.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 4
        code = "from tunesmith.io.worker_child import worker_main; worker_main()"
        ring = new_ring(self._n) if self.rings else None
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", code, str(theirs.fileno()), json.dumps(self.limits.as_dict()), *ring_fds(ring)],
                pass_fds=[theirs.fileno(), *([ring.fd] if ring else [])], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, env=_child_env(),
            )
        finally:
            theirs.close()  # so the parent sees EOF when the worker dies
            if ring is not None:
                os.close(ring.fd)  # the worker has its own
        return _Worker(process, Connection(ours.detach()), ring=ring)

    @property
    def busy(self) -> bool:
        return bool(self._pending) or any(w.inflight for w in self._workers)

    @property
    def backlog(self) -> int:
        """Tasks submitted and not yet answered."""
        return len(self._pending) + self._sent

    def submit(self, key, kind: str, path: bytes | None = None, data: bytes | None = None, cost: int = 0) -> None:
        """Queue a task on the file at `path` (`cost`: its size, for batching), or on `data` when given;
        `poll` hands it to a worker."""
        cost = cost if data is None else len(data)
        task = _Task(key, (key, kind, path, data), MESSAGE_OVERHEAD + (0 if data is None else len(data)), cost)
        self.queued_bytes += task.size
        self._pending.append(task)

    def poll(self, timeout: float | None = 0.0) -> list[tuple]:
        """Dispatch queued tasks and collect finished ones, waiting at most `timeout` s (None: until
        at least one finishes). Kills and replaces workers past their deadline or dead."""
        self._dispatch()
        watched = [w for w in self._workers if w.inflight or (not w.ready and self._pending)]
        if not watched:
            return []
        limit = {True: self.limits.parse_seconds, False: STARTUP_SECONDS}
        next_deadline = min(w.started + limit[w.ready] for w in watched) - time.monotonic()
        wait_s = max(0.0, next_deadline if timeout is None else min(timeout, next_deadline))
        ready = set(wait([w.conn for w in watched], timeout=wait_s))
        results = [r for w in watched if w.conn in ready for r in self._receive(w)]
        results += self._enforce_deadlines()
        self._dispatch()
        return results

    def _dispatch(self) -> None:
        for worker in list(self._workers):
            while worker.ready and self._pending and len(worker.inflight) < self.depth:
                tasks = self._next_batch()
                size = sum(task.size for task in tasks)
                queued = sum(n for _, n in list(worker.inflight)[1:])
                if worker.inflight and queued + size > self._queue_budget:
                    self._pending.extendleft(reversed(tasks))
                    break  # wait for the worker to take what it has: send() must never block
                try:
                    worker.conn.send((worker.ring.released if worker.ring else 0, [task.message for task in tasks]))
                except OSError:  # the worker is gone: poll() answers its tasks; an idle one is replaced
                    self._pending.extendleft(reversed(tasks))
                    if not worker.inflight:
                        self._replace(worker)
                    break
                if not worker.inflight:
                    worker.started = time.monotonic()
                worker.inflight.append((tasks, size))
                self._sent += len(tasks)

    def _next_batch(self) -> list[_Task]:
        """Pop the next batch from the queue: up to BATCH_FILES tasks, BATCH_BYTES and BATCH_COST, or one solo."""
        tasks = [self._pending.popleft()]
        size, cost = tasks[0].size, tasks[0].cost
        while (not tasks[0].solo and self._pending and len(tasks) < BATCH_FILES and not self._pending[0].solo
               and size + self._pending[0].size <= BATCH_BYTES and cost + self._pending[0].cost <= BATCH_COST):
            tasks.append(self._pending.popleft())
            size, cost = size + tasks[-1].size, cost + tasks[-1].cost
        return tasks

    def _receive(self, worker: _Worker) -> list[tuple]:
        results = []
        try:
            while worker.conn.poll():
                message = worker.conn.recv()
                if message == "ready":
                    worker.ready = True
                    continue
                tasks, size = worker.inflight.popleft()
                self.queued_bytes -= size
                self._sent -= len(tasks)
                worker.started = time.monotonic()
                results.extend(message if worker.ring is None else [resolve(r, worker.ring) for r in message])
        except (EOFError, OSError):
            code = worker.process.wait()
            if not worker.ready:
                raise RuntimeError(f"the MIDI parser failed to start ({_exit_reason(code)})") from None
            results.extend(self._fail(worker, f"parser crashed: {_exit_reason(code)}"))
        return results

    def _enforce_deadlines(self) -> list[tuple]:
        now, results = time.monotonic(), []
        for worker in self._workers:
            if not worker.ready and now - worker.started > STARTUP_SECONDS:
                raise RuntimeError(f"the MIDI parser process did not start within {STARTUP_SECONDS:g} s")
            if worker.inflight and now - worker.started > self.limits.parse_seconds:
                worker.process.kill()
                worker.process.wait()
                results.extend(self._fail(worker, f"parse timed out after {self.limits.parse_seconds:g} s"))
        return results

    def _fail(self, worker: _Worker, reason: str) -> list[tuple]:
        """The head batch failed: a lone task is answered with `reason`, the tasks of a larger batch
        are retried one by one; the worker's other batches go back to the queue; it is replaced."""
        (head, _), *rest = worker.inflight
        answered, retry = [], []
        if len(head) == 1:
            answered.append((head[0].key, False, reason))
            self.queued_bytes -= head[0].size
        else:
            retry = [task._replace(solo=True) for task in head]
        self._pending.extendleft(reversed(retry + [task for tasks, _ in rest for task in tasks]))
        self._sent -= sum(len(tasks) for tasks, _ in worker.inflight)
        worker.inflight.clear()
        self._replace(worker)
        return answered

    def _replace(self, worker: _Worker) -> None:
        worker.process.kill()
        worker.process.wait()
        worker.conn.close()
        self._workers[self._workers.index(worker)] = self._start()

    @property
    def alive(self) -> bool:
        """Every worker process is running (an idle worker may have been killed from outside)."""
        return all(w.process.poll() is None for w in self._workers)

    def close(self) -> None:
        """Stop every worker. They hold no state worth a clean exit, so they are killed: an
        interpreter teardown would cost a tenth of a second each."""
        for worker in self._workers:
            worker.process.kill()
            worker.process.wait()
            worker.conn.close()
        self._workers = []

    def __enter__(self) -> ParserPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _child_env() -> dict:
    """The parent's environment, with tunesmith's own folder first on PYTHONPATH (the parent may have
    found it through a path the child would not) and one BLAS thread (the child only parses)."""
    package_root = str(Path(__file__).resolve().parents[2])
    paths = [package_root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1"}


_IDLE: dict[tuple[int, Limits, bool], ParserPool] = {}  # warm pools waiting for the next borrower
_IDLE_LOCK = threading.Lock()
_MAX_IDLE = 4  # pools kept; tests use a few custom Limits


def borrow_pool(n_workers: int, limits: Limits, rings: bool = False) -> ParserPool:
    """A warm pool of `n_workers` from this process's cache, or a new one. Give it back with
    `return_pool`: workers start once per process, not once per file or per call."""
    with _IDLE_LOCK:
        pool = _IDLE.pop((n_workers, limits, rings), None)
    if pool is not None and pool.alive:
        return pool
    if pool is not None:
        pool.close()
    return ParserPool(n_workers, limits, rings=rings)


def return_pool(pool: ParserPool) -> None:
    """Keep an idle, healthy pool for the next borrower; close one left with tasks (an interrupted run)."""
    if pool.busy or not pool.alive:
        pool.close()
        return
    key = (len(pool._workers), pool.limits, pool.rings)
    with _IDLE_LOCK:
        spare = _IDLE.pop(key, None)
        _IDLE[key] = pool
        evicted = _IDLE.pop(next(iter(_IDLE))) if len(_IDLE) > _MAX_IDLE else None
    for extra in (spare, evicted):
        if extra is not None:
            extra.close()


def run_guarded(kind: str, path: bytes | None, data: bytes | None, limits: Limits):
    """One task through a borrowed one-worker pool; the result, or SkipFile with the reason."""
    pool = borrow_pool(1, limits)
    try:
        pool.submit(0, kind, path, data)
        results: list[tuple] = []
        while not results:
            results = pool.poll(None)
    finally:
        return_pool(pool)
    _, ok, payload = results[0]
    if not ok:
        raise SkipFile(payload)
    return payload


@atexit.register
def close_pools() -> None:
    """Stop the idle worker processes kept for later calls (also run at exit)."""
    with _IDLE_LOCK:
        pools = list(_IDLE.values())
        _IDLE.clear()
    for pool in pools:
        pool.close()
