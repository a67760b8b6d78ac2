"""`tunesmith ingest SRC_DIR --out DATASET_DIR`: a folder of MIDI files -> a deduplicated dataset cache.

The parent walks the folder (regular files only, no symlink following, names as raw bytes), reads
and hashes each file, decides what it can without parsing (not a regular file, unchanged since the
last run, same content as a file already seen), and hands the rest to guarded parser processes
(`workers.py`). Results are buffered into shards (`cache_writer.py`); `report.json` and
`quarantine.txt` describe every MIDI-named file of the walk.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tunesmith.core.errors import SkipFile, UserError
from tunesmith.io.atomic import write_atomic
from tunesmith.io.cache import folder_state, read_manifest
from tunesmith.io.cache_writer import DatasetWriter, unpack_piece
from tunesmith.io.checks import check_piece
from tunesmith.io.midi import Limits, display_name, file_kind, is_midi_name, read_file_bytes
from tunesmith.io.workers import borrow_pool, cap_workers, return_pool

READ_AHEAD_FILES, READ_AHEAD_BYTES = 32, 64 << 20  # per worker: files read and queued, not yet parsed
# Skip reasons that may not recur (machine load, I/O): such files are tried again by a rerun.
TRANSIENT = ("parse timed out", "parser crashed", "out of memory", "cannot open", "cannot read")


@dataclass(frozen=True)
class Entry:
    """A MIDI-named directory entry: path relative to the source folder (bytes) and its lstat."""

    rel: bytes
    mode: int
    size: int
    mtime_ns: int


def walk_files(root: bytes,
               wanted: Callable[[bytes], bool] = is_midi_name) -> tuple[list[Entry], list[tuple[bytes, str]]]:
    """Every entry under `root` whose name `wanted` accepts (MIDI suffixes by default), sorted by path
    bytes, plus the folders that could not be listed with the reason. Symlinks are reported as entries,
    never followed."""
    entries, failed, stack = [], [], [b""]
    while stack:
        rel_dir = stack.pop()
        try:
            with os.scandir(os.path.join(root, rel_dir) if rel_dir else root) as listing:
                items = list(listing)
        except OSError as error:
            failed.append((rel_dir, f"cannot list folder: {error.strerror or type(error).__name__}"))
            continue
        for item in items:
            rel = os.path.join(rel_dir, item.name) if rel_dir else item.name
            if item.is_dir(follow_symlinks=False):
                stack.append(rel)
            elif wanted(item.name):
                try:
                    info = item.stat(follow_symlinks=False)
                except OSError:
                    continue  # vanished since the listing
                entries.append(Entry(rel, info.st_mode, info.st_size, info.st_mtime_ns))
    return sorted(entries, key=lambda e: e.rel), failed


def check_arguments(src: Path, out: Path, workers: int) -> tuple[Path, Path, int]:
    """Resolve and validate the command's arguments; UserError names what to fix."""
    src, out = Path(src), Path(out)
    if not src.exists():
        raise UserError(f"source folder {src} does not exist")
    if not src.is_dir():
        raise UserError(f"{src} is a file, not a folder: give the folder that holds the MIDI files")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file: give a new or existing dataset folder")
    if folder_state(out) == "other":
        raise UserError(f"--out {out} is a non-empty folder that is not a tunesmith dataset")
    if workers < 0:
        raise UserError(f"--workers must be 0 (one per core) or more, not {workers}")
    return src.resolve(), out, cap_workers(workers)


class _Run:
    """State of one ingest run: decisions in walk order, the parser pool, the shard writer."""

    def __init__(self, src: Path, out: Path, n_workers: int, limits: Limits, writer: DatasetWriter):
        self.root, self.out, self.limits, self.writer = os.fsencode(src), out, limits, writer
        self.n_workers, self.pool = n_workers, None
        self.records: list[dict | None] = []
        self.first: dict[str, str] = {}  # sha256 -> path of the first file with it in this run
        self.pending: dict[int, tuple[Entry, str]] = {}
        self.parsed = self.reused = 0
        self.bar = None

    def record(self, entry: Entry, sha: str | None, status: str, reason: str | None = None,
               n_notes: int | None = None) -> dict:
        return {"path": os.fsdecode(entry.rel), "size": entry.size, "mtime_ns": entry.mtime_ns,
                "sha256": sha, "status": status, "reason": reason, "n_notes": n_notes}

    def decide(self, idx: int, rec: dict, arrays: dict | None = None, new: bool = True) -> None:
        self.records[idx] = rec
        if new:
            self.writer.add(rec, arrays)
            if self.writer.full:
                self.writer.commit()
        if self.bar is not None:
            self.bar.update(1)

    def triage(self, idx: int, entry: Entry) -> None:
        """Decide `entry` without parsing when possible, else submit it to the parser pool."""
        if not stat.S_ISREG(entry.mode):
            reason = f"not a regular file: {file_kind(entry.mode)}"
            return self.decide(idx, self.record(entry, None, "skipped", reason))
        prior = self.writer.files.get(os.fsdecode(entry.rel))
        if prior and (prior["size"], prior["mtime_ns"]) == (entry.size, entry.mtime_ns) and self.final(prior):
            return self.reuse(idx, prior)
        try:
            data = read_file_bytes(os.path.join(self.root, entry.rel), self.limits, follow_symlinks=False)
        except SkipFile as reason:
            return self.decide(idx, self.record(entry, None, "skipped", str(reason)))
        self.by_content(idx, entry, data)

    def final(self, record: dict) -> bool:
        """A committed verdict this run keeps: skips for transient reasons, or under other limits,
        are tried again."""
        if record["status"] != "skipped":
            return True
        return not (self.writer.limits_changed or (record["reason"] or "").startswith(TRANSIENT))

    def reuse(self, idx: int, prior: dict) -> None:
        self.reused += 1
        if prior["sha256"]:
            self.first.setdefault(prior["sha256"], prior["path"])
        self.decide(idx, prior, new=False)

    def by_content(self, idx: int, entry: Entry, data: bytes) -> None:
        path, sha = os.fsdecode(entry.rel), hashlib.sha256(data).hexdigest()
        earlier = self.first.get(sha)
        known = self.writer.by_sha.get(sha)
        if earlier is None and known is not None and self.final(known):
            earlier = known["path"] if known["path"] != path else None
            if earlier is None:  # same file, touched since the last run: refresh its record
                self.first[sha] = path
                return self.decide(idx, {**known, "size": entry.size, "mtime_ns": entry.mtime_ns})
        if earlier is not None:
            reason = f"same content as {display_name(earlier)}"
            return self.decide(idx, self.record(entry, sha, "duplicate", reason))
        self.first[sha] = path
        self.submit(idx, entry, sha, data)

    def submit(self, idx: int, entry: Entry, sha: str, data: bytes) -> None:
        """Hand `data` to a parser. Workers run the piece checks (`checks.check_piece`), so that with two
        or more the parent, the serial part, only stores pieces; with one, the parent runs them: the
        worker's CPU time then sets the pace, and the parent, waiting on it, has time to spare."""
        if self.pool is None:
            self.pool = borrow_pool(self.n_workers, self.limits)
        self.pending[idx] = (entry, sha)
        self.pool.submit(idx, "table-unchecked" if self.n_workers == 1 else "table", data=data)
        self.parsed += 1
        self.collect(0.0)
        while self._ahead():
            self.collect(None)

    def _ahead(self) -> bool:
        """Read ahead of the workers, but not without bound: 32 files or 64 MiB per worker."""
        pool, n = self.pool, self.n_workers
        return pool.backlog >= READ_AHEAD_FILES * n or pool.queued_bytes > READ_AHEAD_BYTES * n

    def collect(self, timeout: float | None) -> None:
        for idx, ok, payload in self.pool.poll(timeout):
            entry, sha = self.pending.pop(idx)
            if ok:
                arrays = unpack_piece(payload)
                try:
                    if self.n_workers == 1:  # see `submit`
                        check_piece(arrays, self.limits)
                except SkipFile as reason:
                    ok, payload = False, str(reason)
            if ok:
                self.decide(idx, self.record(entry, sha, "ok", n_notes=len(arrays["pitch"])), arrays)
            else:
                self.decide(idx, self.record(entry, sha, "skipped", payload))

    def drain(self) -> None:
        while self.pool is not None and self.pool.busy:
            self.collect(None)

    def close(self) -> None:
        if self.pool is not None:
            return_pool(self.pool)  # kept warm for the next run in this process, closed if interrupted


def ingest_folder(src: Path, out: Path, workers: int = 0, limits: Limits = Limits(),  # noqa: B008
                  shard_files: int = 512, repair: bool = False) -> dict:
    """Ingest every MIDI file under `src` into the dataset folder `out` (created or resumed).

    workers: parser processes, 0 for one per core, capped at the cores (with a warning).
    repair: rebuild what is damaged instead of stopping with a UserError: shards that fail their
    size or checksum check are dropped and their files parsed again; an unusable or missing
    manifest rebuilds the whole dataset.

    Returns the report written to `out/report.json` ({"files": [...], "summary": {...}}) plus
    "parsed" (files sent to a parser this run), "reused" (files decided by an earlier run) and
    "repaired" (names of the damaged shards rebuilt). Bad files are reported, never raised;
    unusable arguments and a damaged dataset (without `repair`) raise UserError.
    """
    src, out, n_workers = check_arguments(src, out, workers)
    manifest = read_manifest(out)
    if manifest is not None and manifest.get("source") not in (None, str(src)):
        raise UserError(f"--out {out} was built from {manifest['source']}, not {src}: use another folder")
    started = time.perf_counter()
    writer = DatasetWriter(out, str(src), limits.as_dict(), shard_files=shard_files, repair=repair)
    try:
        entries, unlisted = walk_files(os.fsencode(src))
        run = _Run(src, out, n_workers, limits, writer)
        run_all(run, entries)
    finally:
        writer.release()
    report = _report(run.records, unlisted)
    _write_report(out, report)
    return {**report, "parsed": run.parsed, "reused": run.reused, "repaired": writer.repaired,
            "seconds": round(time.perf_counter() - started, 3)}


def run_all(run, entries: list[Entry]) -> None:
    """Triage every entry through `run` (a `_Run`: MIDI or audio ingest), wait for its workers, close
    them whatever happens, and commit what the writer still buffers."""
    run.records = [None] * len(entries)
    with _progress(len(entries)) as run.bar:
        try:
            for idx, entry in enumerate(entries):
                run.triage(idx, entry)
            run.drain()
        finally:
            run.close()
    run.writer.commit()


def _progress(total: int):
    from tqdm import tqdm

    return tqdm(total=total, unit="file", desc="ingest", file=sys.stderr, disable=None, leave=False)


def _report(records: list[dict], unlisted: list[tuple[bytes, str]]) -> dict:
    files = [{"path": display_name(os.fsencode(r["path"])), "status": r["status"], "reason": r["reason"],
              "n_notes": r["n_notes"] if r["status"] == "ok" else None} for r in records]
    files += [{"path": display_name(rel) or ".", "status": "skipped", "reason": reason, "n_notes": None}
              for rel, reason in unlisted]
    counts = Counter(f["status"] for f in files)
    return {"files": files, "summary": {k: counts.get(k, 0) for k in ("ok", "skipped", "duplicate")}}


def _write_report(out: Path, report: dict) -> None:
    """report.json and quarantine.txt, atomically; UserError when the disk is full or read-only."""
    # One file per line: readable, and json's C encoder only runs without `indent`.
    files = ",\n  ".join(json.dumps(f, ensure_ascii=False) for f in report["files"])
    text = f'{{"files": [\n  {files}\n ],\n "summary": {json.dumps(report["summary"])}}}\n'
    lines = [f"{f['path']}\t{f['reason']}\n" for f in report["files"] if f["status"] == "skipped"]
    try:
        write_atomic(out / "report.json", text.encode())
        write_atomic(out / "quarantine.txt", "".join(lines).encode())
    except OSError as error:
        raise UserError(f"the dataset in {out} is complete, but its report could not be written: "
                        f"{error.strerror or error}") from None


def summary_line(report: dict) -> str:
    """One line: counts of ok, skipped (grouped by reason category) and duplicate files, and the
    damaged shards a repair rebuilt."""
    summary = report["summary"]
    kinds = Counter((f["reason"] or "").split(":")[0] for f in report["files"] if f["status"] == "skipped")
    detail = ", ".join(f"{n} {kind}" for kind, n in kinds.most_common())
    skipped = f"{summary['skipped']} skipped" + (f" ({detail})" if detail else "")
    repaired = f"; rebuilt {len(report['repaired'])} damaged shard(s)" if report.get("repaired") else ""
    return f"{summary['ok']} ok, {skipped}, {summary['duplicate']} duplicate{repaired}"
