"""Atomic file writes: write a temp file beside the target, sync it, then os.replace it into place.

A reader (or a rerun after a kill) sees the old file or the new one, never half of one. Temp files
are created with mode 0o666 filtered by the umask, like any file the user writes, and start with a
dot so that folder listings and the dataset's orphan sweep can tell them apart.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success it is synced and renamed to `path`, on error removed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: str | os.PathLike, data: bytes | Callable[[object], None]) -> None:
    """Write `data` (bytes, or a function that writes to a binary file handle) to `path` atomically."""
    with atomic_path(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies, as for any file
        with open(fd, "wb") as out:
            _fill(out, data)


def _fill(out, data: bytes | Callable[[object], None]) -> None:
    if callable(data):
        data(out)
    else:
        out.write(data)
