"""What runs inside a guarded parser process (`io.workers.ParserPool` starts it as
`python -c "from tunesmith.io.worker_child import worker_main; worker_main()" FD LIMITS_JSON [RING_FD
RING_SIZE]`): it warms up, caps its own address space (its ring mapped first), then answers batches of
parse tasks over its socket until EOF. Every failure becomes a one-line reason in the answer, never a
crash of the parent."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from multiprocessing.connection import Connection

from tunesmith.core.errors import SkipFile
from tunesmith.io.midi import Limits, parse_bytes, read_file_bytes, read_named_file
from tunesmith.io.packing import pack_checked
from tunesmith.io.ring import RingWriter


def handle_task(kind: str, path: bytes | None, data: bytes | None, limits: Limits, ring=None):
    """Do one task in this process, on `data` or else the file at `path`.

    kind 'score' -> the fully checked Score; kind 'table' -> `packing.pack_checked` of it (every check
    of `checks.check_piece` run here on the arrays being packed; the blob in `ring`, a
    `ring.RingWriter`, when it has room). Kind 'table-file' (read and hashed here first) is answered
    by `_answer`.
    """
    if data is None:
        data = read_named_file(path, limits)
    if kind == "score":
        return parse_bytes(data, limits)
    return pack_checked(parse_bytes(data, limits, checked=False), limits, ring)


def worker_main() -> None:
    """Child entry point (argv: socket fd, Limits as JSON[, ring fd, ring size]): announce 'ready', then
    answer each batch (ring released offset, [(key, kind, path, data), ...]) with [(key, ok, result or
    reason), ...] until EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    conn = Connection(int(sys.argv[1]))
    limits = Limits(**json.loads(sys.argv[2]))
    ring = RingWriter(int(sys.argv[3]), int(sys.argv[4])) if len(sys.argv) > 4 else None
    _warm_up()
    limit_address_space(limits.parse_memory_bytes)
    conn.send("ready")
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        released, tasks = message
        if ring is not None:
            ring.released = released
        conn.send([_answer(task, limits, ring) for task in tasks])


def _answer(message: tuple, limits: Limits, ring=None) -> tuple:
    """(key, ok, result or reason) of one task. Kind 'table-file' (ingest: the parent only walks the
    folder and stores) reads the file at `path` here (no symlink followed, as the parent's walk) and
    hashes it: ok=False with the reason when it cannot be read, else ok=True and (sha256 hex, ok,
    `handle_task(kind='table')` result or reason), so the parent can tell copies apart whatever the
    parse gave."""
    key, kind, path, data = message
    if kind != "table-file":
        return key, *_attempt(limits, handle_task, kind, path, data, limits, ring)
    ok, data = _attempt(limits, read_file_bytes, path, limits, False)
    if not ok:
        return key, False, data
    sha = hashlib.sha256(data).hexdigest()
    return key, True, (sha, *_attempt(limits, handle_task, "table", None, data, limits, ring))


def _attempt(limits: Limits, function, *args) -> tuple[bool, object]:
    """(True, function(*args)), or (False, a one-line reason) for whatever it raised."""
    try:
        return True, function(*args)
    except SkipFile as reason:
        return False, str(reason)
    except MemoryError:
        return False, f"out of memory: parsing needs over {limits.parse_memory_bytes >> 20} MiB"
    except Exception as error:  # anything else symusic or numpy throws: one line, never a crash
        return False, f"parse error: {type(error).__name__}: {error}"[:240]


def limit_address_space(extra_bytes: int) -> None:
    """Cap this process's address space at its current size + `extra_bytes` (Linux; no-op elsewhere)."""
    try:
        import resource

        with open("/proc/self/statm") as handle:
            current = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = current + extra_bytes
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, OSError, ValueError):
        pass


def _warm_up() -> None:
    """Import numpy and the check modules and pack a tiny score once (imports, and `packing` decides how
    it reads symusic's notes), so that the first file's deadline measures parsing, not imports."""
    from symusic import Score

    from tunesmith.io import packing

    tiny = b"MThd\0\0\0\6\0\0\0\1\1\xe0MTrk\0\0\0\x0c\0\x90\x3c\x40\x60\x80\x3c\0\0\xff\x2f\0"
    packing.score_columns(Score.from_midi(tiny))
