"""Writer side of the dataset cache (format: see `cache.py`): buffer pieces, commit shards atomically.

A commit writes `NNNNNN.bin`, then `NNNNNN.json`, then the manifest that lists the shard with the
size and checksum of both files, each through a temp file and os.replace. Commits run in a background
thread, one shard at a time and in order (the caller goes on feeding its parsers while a shard is written
and synced; `flush` waits for it). Only shards named in the
manifest exist for readers and for resume, so a kill at any moment loses at most the shard being
filled; files left by an interrupted commit (and temp files) are removed when a writer opens the
folder again. Opening also checks every committed shard against its checksums: a damaged one stops
the run with the fix, or with `repair=True` is dropped so that its files are ingested again.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path

import numpy as np

from tunesmith.core.errors import UserError
from tunesmith.io.atomic import write_atomic
from tunesmith.io.cache import (
    ALIGN,
    FORMAT,
    GROUPS,
    PIECE_DTYPES,
    TEMP_NAME,
    VERSION,
    damage_error,
    damaged_shards,
    folder_state,
    load_manifest,
)
from tunesmith.io.cache_checksums import CHECKSUM, checksum_bytes, new_checksum
from tunesmith.io.packing import pack_score, piece_arrays, unpack_piece  # noqa: F401 (their old home)

log = logging.getLogger(__name__)


class DatasetWriter:
    """Append-only writer over a dataset folder. `files` and `by_sha` describe everything committed.

    files: path -> latest record {path, size, mtime_ns, sha256, status, reason, n_notes}
    by_sha: sha256 -> first record with that content (its status says ok / skipped / duplicate)
    """

    def __init__(self, out: Path, source: str, limits: dict, shard_files: int = 512,
                 shard_notes: int = 2_000_000, repair: bool = False):
        self.out, self.folder = Path(out), Path(out) / "shards"
        self.shard_files, self.shard_notes = shard_files, shard_notes
        self.files: dict[str, dict] = {}
        self.by_sha: dict[str, dict] = {}
        self._records: list[dict] = []
        self._pieces: list[tuple[dict, dict]] = []
        self._notes = 0
        self._open_locked(source, limits, repair)

    _flight: Future | None = None  # the shard being written in the background, if any
    _thread: ThreadPoolExecutor | None = None

    def _open_locked(self, *args) -> None:
        """`_open(*args)`, releasing the folder lock on any failure (an OSError as one sentence)."""
        self._lock = None
        try:
            self._open(*args)
        except OSError as error:
            self.release()
            raise UserError(f"cannot write the dataset in {self.out}: {error.strerror or error}") from None
        except BaseException:
            self.release()
            raise

    def _open(self, source: str, limits: dict, repair: bool) -> None:
        """Lock the folder, sweep temp files, load (or start) the manifest, check the committed shards."""
        self.out.mkdir(parents=True, exist_ok=True)
        self._lock = _lock_folder(self.out)
        _sweep_temp_files(self.out)
        manifest = self._previous_manifest(repair)
        self.folder.mkdir(exist_ok=True)
        # Skip verdicts of earlier runs under other limits do not hold any more (see `limits_changed`).
        self.limits_changed = manifest is not None and manifest.get("limits") != limits
        self.manifest = manifest or {"format": FORMAT, "version": VERSION, "source": source, "shards": []}
        self.manifest["version"] = VERSION  # an older folder's shards stay readable beside the new ones
        self.manifest["limits"] = limits
        self.repaired = self._drop_damaged(repair)
        self.commit_manifest()  # from here on the folder is a dataset, even if this run dies at once
        self._load_committed()
        self._remove_orphans()

    def _previous_manifest(self, repair: bool) -> dict | None:
        """The manifest of an earlier run, or None to start afresh: for a new or unfinished folder, or
        with `repair` when the manifest is missing or unusable (the whole cache is rebuilt)."""
        state = folder_state(self.out)
        if state in ("empty", "unfinished") or (repair and state == "damaged"):
            return None
        try:
            return load_manifest(self.out)
        except UserError:
            if not repair:
                raise
        if not (self.out / "manifest.json").is_file():
            raise UserError(f"{self.out / 'manifest.json'} is not a file: remove it, then repair again")
        log.warning("%s: the manifest is unusable; --repair rebuilds the whole dataset", self.out)
        return None

    def _drop_damaged(self, repair: bool) -> list[str]:
        """Names of the committed shards that fail their size or checksum check, dropped from the
        manifest (their files are ingested again) when `repair`; UserError naming them otherwise."""
        damaged = damaged_shards(self.out, self.manifest, verify=True)
        if damaged and not repair:
            raise damage_error(self.out, self.manifest, damaged)
        if damaged:
            log.warning("%s: dropped %d damaged shard(s) (%s); their files are ingested again",
                        self.out, len(damaged), ", ".join(damaged))
        self.manifest["shards"] = [s for s in self.manifest["shards"] if s["name"] not in damaged]
        return list(damaged)

    def _load_committed(self) -> None:
        for shard in self.manifest["shards"]:
            index = json.loads((self.folder / f"{shard['name']}.json").read_text())
            for record in index["files"]:
                self.files[record["path"]] = record
                if record["sha256"]:
                    self.by_sha.setdefault(record["sha256"], record)

    def _remove_orphans(self) -> None:
        """Remove shard files the manifest does not list (an interrupted commit, a dropped shard)."""
        committed = {s["name"] for s in self.manifest["shards"]}
        for path in self.folder.iterdir():
            if path.name.split(".")[0] not in committed or path.name.startswith("."):
                if path.is_dir() and not path.is_symlink():
                    continue  # not ours to remove
                path.unlink(missing_ok=True)

    def add(self, record: dict, piece: tuple | None = None) -> None:
        """Buffer a file's record, with its piece (a `pack_score` result) when its status is 'ok'."""
        self._records.append(record)
        if piece is not None:
            self._pieces.append((record, piece))
            self._notes += piece[1][0]
        if record["sha256"]:
            self.by_sha.setdefault(record["sha256"], record)

    @property
    def full(self) -> bool:
        return len(self._records) >= self.shard_files or self._notes >= self.shard_notes

    def close(self) -> None:
        """Commit what is buffered and let other writers in."""
        self.flush()
        self.release()

    def release(self) -> None:
        """Let other writers in, dropping what is buffered (an interrupted run); a shard being written
        is finished first (a failure there is logged: the run is being abandoned anyway)."""
        try:
            self._wait()
        except UserError as error:
            log.warning("%s", error)
        if self._thread is not None:
            self._thread.shutdown()
            self._thread = None
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def commit_manifest(self) -> None:
        """Write the manifest as it stands (atomically)."""
        write_atomic(self.out / "manifest.json", json.dumps(self.manifest, indent=1).encode())

    def commit(self, then: Callable[[], None] | None = None) -> None:
        """Start writing the buffered records and pieces as the next shard, in the background; `then`
        runs in the writing thread once the shard's files are done with the pieces' buffers (committed
        or not). Waits for the shard before it first, so a failed write raises UserError here."""
        self._wait()
        if not self._records:
            if then is not None:
                then()
            return
        buffered = self._take_buffer()
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="tunesmith-shards")
        self._flight = self._thread.submit(self._commit_then, buffered, then)

    def flush(self) -> None:
        """Commit what is buffered and wait until every shard is on disk (UserError if a write failed)."""
        self.commit()
        self._wait()

    def _wait(self) -> None:
        flight, self._flight = self._flight, None
        if flight is None:
            return
        try:
            flight.result()
        except OSError as error:  # disk full, folder removed or made read-only under us
            raise UserError(f"cannot write the dataset in {self.out}: {error.strerror or error}") from None

    def _commit_then(self, buffered: tuple, then: Callable[[], None] | None) -> None:
        try:
            self._commit(*buffered)
        finally:
            if then is not None:
                then()

    def _take_buffer(self) -> tuple:
        """What `add` buffered, as `_commit`'s arguments; the buffer starts empty again."""
        buffered = (self._records, self._pieces, self._notes)
        self._records, self._pieces, self._notes = [], [], 0
        return buffered

    def _commit(self, records: list[dict], pieces: list[tuple[dict, tuple]], notes: int) -> None:
        """Write `records` and their `pieces` as the next shard (`notes` in all), then list it."""
        name = f"{1 + max((int(s['name']) for s in self.manifest['shards']), default=-1):06d}"
        layout, arrays = _pack([piece for _, piece in pieces])
        bin_check = _write_arrays(self.folder / f"{name}.bin", arrays) if layout else None
        listed = [{"id": rec["sha256"], "path": rec["path"], "track_names": piece[3]} for rec, piece in pieces]
        index = json.dumps({"layout": layout, "pieces": listed, "files": records}).encode()
        write_atomic(self.folder / f"{name}.json", index)
        self.manifest["shards"].append({"name": name, "pieces": len(listed), "notes": notes,
                                        "files": len(records), "bin": bin_check,
                                        "json": checksum_bytes(index)})
        self.commit_manifest()
        for record in records:
            self.files[record["path"]] = record


def _lock_folder(out: Path) -> int:
    """An exclusive lock on `out` held through the returned descriptor (UserError when taken).

    The lock is an flock on `.ingest.lock`, which the kernel releases when its holder dies, so the
    file left by a killed run (with that run's pid in it) is simply taken over.
    """
    import fcntl

    fd = os.open(out / ".ingest.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        os.close(fd)
        who = f" (pid {holder})" if holder.isdigit() else ""
        raise UserError(f"another ingest is writing to {out}{who}; wait for it to finish") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _sweep_temp_files(out: Path) -> None:
    """Remove the temp files of atomic writes killed in `out` and `out/shards` (we hold the lock)."""
    for folder in (out, out / "shards"):
        if folder.is_dir():
            for entry in os.scandir(folder):
                if TEMP_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                    Path(entry.path).unlink(missing_ok=True)


class Parts(list):
    """One array of a shard as the byte slices of the pieces' buffers, in order: `_write_arrays` writes
    them one after the other, so the bulk of a shard (the per-note arrays) is never joined in memory."""

    dtype: np.dtype
    nbytes: int = 0  # bytes of all the slices, counted as they are added

    def __len__(self) -> int:  # items, as for an array
        return self.nbytes // self.dtype.itemsize


def _pack(pieces: list[tuple]) -> tuple[dict, list[np.ndarray | Parts]]:
    """Concatenate the pieces' arrays (`pack_score` results) and add the offsets.

    Returns the layout (name -> (dtype string, length, byte offset), offsets multiples of ALIGN;
    empty without pieces) and the arrays in layout order: the per-note arrays a parser produces as
    `Parts` (little-endian machines), the others as numpy arrays.
    """
    if not pieces:
        return {}, []
    columns = _columns(pieces)
    arrays: dict[str, np.ndarray | Parts] = {}
    for name, dtype in PIECE_DTYPES.items():
        little = np.dtype(dtype).newbyteorder("<")
        if name in GROUPS["notes"] and sys.byteorder == "little":
            arrays[name] = columns[name]
            arrays[name].dtype = little
        else:
            arrays[name] = np.frombuffer(b"".join(columns[name]), dtype).astype(little, copy=False)
    counts = np.array([piece[1] for piece in pieces], np.int64).reshape(-1, len(GROUPS))
    arrays["piece_tpq"] = np.array([p[2] for p in pieces], "<i4")
    arrays.update({f"piece_{group}": np.concatenate([[0], np.cumsum(counts[:, g])]).astype("<i8")
                   for g, group in enumerate(GROUPS)})
    layout, offset = {}, 0
    for name, array in arrays.items():
        layout[name] = (array.dtype.str, len(array), offset)
        offset += -(-array.nbytes // ALIGN) * ALIGN
    return layout, list(arrays.values())


def _columns(pieces: list[tuple]) -> dict[str, Parts]:
    """Each PIECE_DTYPES array of every piece as byte slices of the buffers the workers packed, piece
    after piece (no numpy array per piece and array: the writer's CPU per file is what two parser
    workers on two cores wait on). Cut points come from one numpy pass over all pieces; the slices of
    a piece are one list, and the lists are turned into columns by one transposition."""
    counts = np.array([piece[1] for piece in pieces], np.int64)  # (pieces, groups)
    widths = counts[:, _COLUMN_GROUP] * _COLUMN_SIZE  # bytes of each column of each piece
    cuts = np.zeros((len(pieces), len(_COLUMN_SIZE) + 1), np.int64)
    np.cumsum(widths, axis=1, out=cuts[:, 1:])
    rows = [[view[a:b] for a, b in pairwise(row)] for view, row in
            zip(map(memoryview, [piece[0] for piece in pieces]), cuts.tolist(), strict=True)]
    parts = {}
    for name, column, nbytes in zip(PIECE_DTYPES, zip(*rows, strict=True), widths.sum(axis=0).tolist(),
                                    strict=True):
        parts[name] = Parts(column)
        parts[name].nbytes = nbytes
    return parts


_COLUMN_GROUP = np.array([g for g, group in enumerate(GROUPS.values()) for _ in group])  # each column's group
_COLUMN_SIZE = np.array([np.dtype(dtype).itemsize for dtype in PIECE_DTYPES.values()])  # bytes per item


def _write_arrays(path: Path, arrays: list[np.ndarray | Parts]) -> dict:
    """Write arrays back to back, each padded to ALIGN bytes, atomically; returns the file's
    {"size": bytes, CHECKSUM: hex}, hashed as it is written."""
    hasher, size = new_checksum(), 0

    def write(out) -> None:
        nonlocal size
        out.flush()
        update = hasher.update
        for array in arrays:  # Parts hold byte views already; arrays are viewed as bytes
            data = array if isinstance(array, Parts) else [memoryview(np.ascontiguousarray(array)).cast("B")]
            parts = [*data, b"\0" * (-array.nbytes % ALIGN)]
            for part in parts:
                update(part)
            size += _write_all(out.fileno(), parts)

    write_atomic(path, write)
    return {"size": size, CHECKSUM: hasher.hexdigest()}


def _write_all(fd: int, parts: list) -> int:
    """Write the byte buffers `parts` to `fd` in order, a few syscalls for hundreds of them (writev); bytes
    written."""
    views = list(filter(len, parts))  # empty ones dropped: a writev of nothing would look like a full disk
    total, i = 0, 0
    while i < len(views):
        done = os.writev(fd, views[i : i + 1024])  # IOV_MAX on Linux
        if done <= 0:
            raise OSError(errno.EIO, "the disk took no bytes")
        total += done
        while i < len(views) and done >= len(views[i]):
            done -= len(views[i])
            i += 1
        if done:  # a short write: the rest of this buffer goes next
            views[i] = views[i][done:]
    return total
