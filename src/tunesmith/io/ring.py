"""Shared byte rings between ingest's parent and its parser workers (Linux memfd; elsewhere none).

Each worker of a `workers.ParserPool` may get a ring: a memfd mapped by both processes. The worker packs
a piece straight into its ring (`RingWriter.put`) and answers with where it lies (a `RingRef`), so the
note bytes cross no socket and are never pickled; the parent turns the reference into a memoryview of
its own mapping (`Ring.take`) and the shard writer copies from there. The parent releases each piece
once it is written to a shard or not kept (`Ring.release`), and tells the worker, with every batch it
sends, how far the ring is free (`Ring.released`): a worker never writes over bytes the parent may
still read. A piece that does not fit travels in the answer as before.

Offsets are byte counts since the ring was made (they only grow); a piece lies at `start % size`,
whole: one that would run past the end starts again at 0 and the tail is skipped. A ring's pages are
mapped when its worker starts and live as long as the worker (`ring_size`: 64 MiB in all up to 8 workers).
Measured on the benchmark corpus (`benchmarks/ingest.py`): the parent's CPU per file 0.125 -> 0.106 ms,
the workers' 0.730 -> 0.706 ms (two workers, a loaded machine: interleaved runs, the best of eight).
"""

from __future__ import annotations

import mmap
import os
from collections import deque
from typing import NamedTuple

# Per worker: a shard's pieces (<= 2M notes, ~20 MB) and the read-ahead fit in RING_BYTES; with more
# workers each holds a smaller share of a shard, so rings shrink to keep RING_TOTAL in all (8 MiB at least).
RING_BYTES, RING_TOTAL, RING_LEAST = 32 << 20, 64 << 20, 8 << 20


def ring_size(n_workers: int) -> int:
    """Bytes of each ring for a pool of `n_workers`."""
    return min(RING_BYTES, max(RING_TOTAL // max(1, n_workers), RING_LEAST))


def _map(fd: int, size: int) -> mmap.mmap:
    """The ring's memory, mapped shared and populated at once: a page met for the first time while
    packing costs a fault and a zeroed page, a fifth of a small file's packing."""
    return mmap.mmap(fd, size, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0))


class RingRef(NamedTuple):
    """Where a worker put a piece in its ring: offset since the ring was made, and length in bytes."""

    start: int
    nbytes: int


class Ring:
    """Parent side of one worker's ring. `fd` is handed to the worker (then closed here); `view` keeps
    the mapping alive as long as a piece's view of it is."""

    def __init__(self, size: int):
        self.fd = os.memfd_create("tunesmith-ring")  # close-on-exec: only the worker it is passed to gets it
        os.ftruncate(self.fd, size)
        self.size = size
        self.view = memoryview(_map(self.fd, size))
        self.live: deque[Lease] = deque()  # the pieces taken and not yet released, in ring order
        self.end = 0  # end of the last piece taken

    def take(self, ref: RingRef) -> tuple[memoryview, Lease]:
        """The piece at `ref` as a read-only view, and its lease (`Lease.release` when done with it)."""
        at = ref.start % self.size
        lease = Lease(ref.start)
        self.live.append(lease)
        self.end = ref.start + ref.nbytes
        return self.view[at : at + ref.nbytes].toreadonly(), lease

    @property
    def released(self) -> int:
        """Offset before which the worker may write again: the oldest piece in use, else the last end."""
        while self.live and not self.live[0].held:
            self.live.popleft()
        return self.live[0].start if self.live else self.end


class Lease:
    """A piece the parent holds in a ring; `release` once it is written to a shard or not kept."""

    __slots__ = ("start", "held")

    def __init__(self, start: int):
        self.start, self.held = start, True

    def release(self) -> None:
        self.held = False


class RingWriter:
    """Worker side of a ring: `put` packs byte parts in, when the parent has released room for them."""

    def __init__(self, fd: int, size: int):
        self.map = _map(fd, size)
        os.close(fd)
        self.size, self.head, self.released = size, 0, 0

    def put(self, parts: list, nbytes: int) -> RingRef | None:
        """Copy the buffers `parts` (`nbytes` in all) into the ring, back to back; where they lie, or
        None when the ring has no room (or the piece is over a quarter of it)."""
        at = self.head % self.size
        start = self.head + (self.size - at if at + nbytes > self.size else 0)
        if nbytes > self.size // 4 or start + nbytes - self.released > self.size:
            return None
        self.map.seek(start % self.size)
        for part in parts:
            self.map.write(part)
        self.head = start + nbytes
        return RingRef(start, nbytes)

    def buffer(self, ref: RingRef):
        """The mapping and the byte position of the piece at `ref` (for views while it is checked)."""
        return self.map, ref.start % self.size


def ring_fds(ring: Ring | None) -> list[str]:
    """The worker's extra command-line arguments for `ring`: its fd and size, or none."""
    return [] if ring is None else [str(ring.fd), str(ring.size)]


def new_ring(n_workers: int = 1) -> Ring | None:
    """A ring for a new worker of a pool of `n_workers`, or None where memfd is missing (the pieces then
    travel in the answers)."""
    try:
        return Ring(ring_size(n_workers)) if hasattr(os, "memfd_create") else None
    except OSError:
        return None


def resolve(answer: tuple, ring: Ring) -> tuple:
    """A worker's answer (key, ok, payload) whose packed piece lies in `ring`, with the piece given as
    (view of its bytes, counts, tpq, names, lease). The piece is the payload itself (kind 'table') or
    the payload's last item (kind 'table-file': (sha256, ok, piece)); other answers are returned as
    they are."""
    key, ok, payload = answer
    if not ok or type(payload) is not tuple or not payload:
        return answer
    if type(payload[0]) is RingRef:
        return key, ok, _take(payload, ring)
    piece = payload[-1]
    if type(piece) is tuple and piece and type(piece[0]) is RingRef:
        return key, ok, (*payload[:-1], _take(piece, ring))
    return answer


def _take(piece: tuple, ring: Ring) -> tuple:
    view, lease = ring.take(piece[0])
    return (view, *piece[1:], lease)
