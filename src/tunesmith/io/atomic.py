"""Atomic file writes: write a temp file beside the target, sync it, then os.replace it into place.

A reader (or a rerun after a kill) sees the old file or the new one, never half of one. Temp files
are created with mode 0o666 filtered by the umask, like any file the user writes, and start with a
dot so that folder listings and the dataset's orphan sweep can tell them apart. Their names,
`.NAME.PID.RANDOM.tmp`, carry the writer's process id: `sweep_temp_files` removes those a killed
writer left behind.

Bytes given to `write_atomic` are checked against the size of the written file before the rename:
some writers (symusic's `dump_midi`) ignore write errors and leave short or empty files on a full
disk, so callers get the bytes in memory first and write them here, where an error is an OSError.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)
TEMP_MAX_AGE_S = 300.0  # a temp file untouched this long is an orphan, whoever wrote it
# .NAME.PID.RANDOM.tmp (atomic_path), or any other hidden .tmp file (older writers: age only).
_TEMP_NAME = re.compile(r"\..+?(?:\.(?P<pid>\d+)\.[0-9a-f]{8})?\.tmp")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success it is synced and renamed to `path`, on error removed
    (an OSError that names no file, or the temp file, is raised again naming `path`)."""
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
    except OSError as error:
        tmp.unlink(missing_ok=True)
        if error.filename in (None, str(tmp)):  # a full disk names no file, a temp name means nothing to users
            raise OSError(error.errno, error.strerror or str(error), str(path)) from error
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_output_path(path: str | os.PathLike, folder: bool = False) -> Path:
    """Before any work: UserError unless `path` can be written as a file (a folder with `folder`): not a
    folder where a file goes (or the reverse), and its nearest existing ancestor a folder we may write in."""
    from tunesmith.core.errors import UserError

    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        raise UserError(f"cannot write into {path}: it is a file, not a folder" if folder else
                        f"cannot write {path}: it is a folder; give a file name")
    ancestor = (path if folder and path.is_dir() else path.parent).absolute()
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"cannot write {path}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {path}: no permission to write in {ancestor}")
    return path


def write_atomic(path: str | os.PathLike, data: bytes | Callable[[object], None]) -> None:
    """Write `data` (bytes, or a function that writes to a binary file handle) to `path` atomically.

    For bytes, the written size is checked before the rename: a short write raises OSError (EIO) and
    leaves `path` as it was. Any OSError (full disk, no permission, a folder in the way) propagates.
    """
    with atomic_path(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies, as for any file
        with open(fd, "wb") as out:
            _fill(out, data)
            out.flush()
            size = os.fstat(out.fileno()).st_size
        if not callable(data) and size != len(data):
            raise OSError(errno.EIO, f"wrote {size} of {len(data)} bytes", str(path))


def _fill(out, data: bytes | Callable[[object], None]) -> None:
    if callable(data):
        data(out)
    else:
        out.write(data)


def sweep_temp_files(folder: str | os.PathLike, max_age_s: float = TEMP_MAX_AGE_S,
                     recursive: bool = False) -> list[Path]:
    """Remove temp files that killed writers left in `folder` (and its subfolders with `recursive`).

    A hidden `.tmp` file goes when the process named in it (`atomic_path`'s `.NAME.PID.RANDOM.tmp`)
    is gone, or when it has not been written for `max_age_s` seconds; this process's own files are
    kept. Returns the paths removed (logged at INFO); files that vanish or resist are left alone.
    """
    folder = Path(folder)
    candidates = folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp")
    removed = []
    for path in candidates:
        match = _TEMP_NAME.fullmatch(path.name)
        if match and _is_orphan(path, match["pid"], max_age_s):
            try:
                path.unlink()
            except OSError:
                continue
            removed.append(path)
    if removed:
        log.info("removed %d temp file(s) left by interrupted writes in %s", len(removed), folder)
    return removed


def _is_orphan(path: Path, pid: str | None, max_age_s: float) -> bool:
    """True when the writer of temp file `path` is dead or the file is older than `max_age_s`."""
    try:
        info = path.lstat()
    except OSError:
        return False
    if not path.is_file() or path.is_symlink():
        return False
    if pid is not None and int(pid) == os.getpid():
        return False
    old = time.time() - info.st_mtime > max_age_s
    return old or (pid is not None and not _alive(int(pid)))


def _alive(pid: int) -> bool:
    """Whether process `pid` exists (on this machine; a permission error means it does)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # someone else's live process
        return True
    return True
