"""`tunesmith ingest SRC_DIR --out DATASET_DIR`: a folder of MIDI files -> a deduplicated dataset cache.

The parent walks the folder (regular files only, no symlink following, names as raw bytes), decides
what it can without parsing (not a regular file, unchanged since the last run) and hands the rest to
guarded parser processes (`workers.py`), which read, hash, parse, check and pack each file (`_MidiRun`
says why). Entries are decided in walk order; results are buffered into shards (`cache_writer.py`);
`report.json` and `quarantine.txt` describe every MIDI-named file of the walk.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import stat
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tunesmith.core.errors import SkipFile, UserError
from tunesmith.io.atomic import write_atomic
from tunesmith.io.cache import folder_state, read_manifest
from tunesmith.io.cache_writer import DatasetWriter
from tunesmith.io.midi import Limits, display_name, file_kind, is_midi_name, read_file_bytes
from tunesmith.io.workers import BATCH_FILES, borrow_pool, cap_workers, return_pool

# Per worker: files handed over and not yet decided (96 small files: three batches, so a worker has the next
# batch queued while the parent decides answers and packs a shard for the writing thread), and bytes queued.
READ_AHEAD_FILES, READ_AHEAD_BYTES = 96, 64 << 20
# Skip reasons that may not recur (machine load, I/O): such files are tried again by a rerun.
TRANSIENT = ("parse timed out", "parser crashed", "out of memory", "cannot open", "cannot read")
WORKER_LOST = TRANSIENT[:3]  # answers a worker gives without the file's hash (the pool's, or a MemoryError)


@dataclass(frozen=True)
class Entry:
    """A MIDI-named directory entry: path relative to the source folder (bytes) and its lstat."""

    rel: bytes
    mode: int
    size: int
    mtime_ns: int

    path: str = field(init=False)  # `rel` as the dataset records it (os.fsdecode)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", os.fsdecode(self.rel))


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
    """State of one ingest run: decisions in walk order, the shard writer; what a subclass adds: `submit`
    (hand a file over), `collect` (decide on the answers), `drain` and `close`.

    Entries are decided in walk order (`later`), so shards and which of two copies is the duplicate do
    not depend on which worker answered first. This base reads and hashes each file in the parent before
    `submit(idx, entry, sha, data)`, so a copy of a file already seen is never decoded (audio ingest);
    MIDI ingest (`_MidiRun`) leaves that to its workers.
    """

    def __init__(self, src: Path, out: Path, n_workers: int, limits: Limits, writer):
        self.root, self.out, self.limits, self.writer = os.fsencode(src), out, limits, writer
        self.n_workers, self.pool = n_workers, None
        self.records: list[dict | None] = []
        self.first: dict[str, str] = {}  # sha256 -> path of the first file with it in this run
        self.pending: dict[int, object] = {}
        self.waiting: dict[int, Callable[[], None]] = {}  # decisions made before an earlier entry's
        self.next_idx = 0  # the first entry not yet decided
        self.parsed = self.reused = 0
        self.bar = None

    def record(self, entry: Entry, sha: str | None, status: str, reason: str | None = None,
               n_notes: int | None = None) -> dict:
        return {"path": entry.path, "size": entry.size, "mtime_ns": entry.mtime_ns,
                "sha256": sha, "status": status, "reason": reason, "n_notes": n_notes}

    def later(self, idx: int, action: Callable[[], None]) -> None:
        """Run `action` (which decides entry `idx`) once every earlier entry is decided."""
        self.waiting[idx] = action
        while self.next_idx in self.waiting:
            action = self.waiting.pop(self.next_idx)
            self.next_idx += 1
            action()

    def decide(self, idx: int, rec: dict, piece=None, new: bool = True) -> None:
        self.later(idx, lambda: self.store(idx, rec, piece, new))

    def store(self, idx: int, rec: dict, piece=None, new: bool = True) -> None:
        """Record the decision on entry `idx`; a new one goes to the writer with its piece."""
        self.records[idx] = rec
        if new:
            self.writer.add(rec, piece)
            if self.writer.full:
                self.commit()
        if self.bar is not None:
            self.bar.update(1)

    def commit(self) -> None:
        self.writer.commit()

    def triage(self, idx: int, entry: Entry) -> None:
        """Decide `entry` without decoding when possible, else hand it over (`hand_over`)."""
        if not stat.S_ISREG(entry.mode):
            reason = f"not a regular file: {file_kind(entry.mode)}"
            return self.decide(idx, self.record(entry, None, "skipped", reason))
        prior = self.writer.files.get(entry.path)
        if prior and (prior["size"], prior["mtime_ns"]) == (entry.size, entry.mtime_ns) and self.final(prior):
            return self.reuse(idx, prior)
        self.hand_over(idx, entry)

    def hand_over(self, idx: int, entry: Entry) -> None:
        """Read and hash the file here; decide a copy at once, submit the rest with their bytes."""
        try:
            data = read_file_bytes(os.path.join(self.root, entry.rel), self.limits, follow_symlinks=False)
        except SkipFile as reason:
            return self.decide(idx, self.record(entry, None, "skipped", str(reason)))
        sha = hashlib.sha256(data).hexdigest()
        if (known := self.copy_record(entry, sha)) is not None:
            return self.decide(idx, known)
        self.submit(idx, entry, sha, data)

    def final(self, record: dict) -> bool:
        """A committed verdict this run keeps: skips for transient reasons, or under other limits,
        are tried again."""
        if record["status"] != "skipped":
            return True
        return not (self.writer.limits_changed or (record["reason"] or "").startswith(TRANSIENT))

    def reuse(self, idx: int, prior: dict) -> None:
        self.reused += 1

        def reused() -> None:
            if prior["sha256"]:
                self.first.setdefault(prior["sha256"], prior["path"])
            self.store(idx, prior, new=False)

        self.later(idx, reused)

    def copy_record(self, entry: Entry, sha: str) -> dict | None:
        """The record of `entry` when content `sha` was met before (a duplicate, or this very file touched
        since the last run); None after noting `entry` as the first file with it."""
        path = entry.path
        earlier = self.first.get(sha)
        known = self.writer.by_sha.get(sha)
        if earlier is None and known is not None and self.final(known):
            earlier = known["path"] if known["path"] != path else None
            if earlier is None:  # same file, touched since the last run: refresh its record
                self.first[sha] = path
                return {**known, "size": entry.size, "mtime_ns": entry.mtime_ns}
        if earlier is not None:
            return self.record(entry, sha, "duplicate", f"same content as {display_name(earlier)}")
        self.first[sha] = path
        return None


class _MidiRun(_Run):
    """MIDI ingest: the workers read, hash, parse, check and pack each file; the parent walks the folder
    and stores what they send (the pieces' bytes through shared rings, `ring.py`), so its share of the
    CPU stays small and two workers on two cores are not held back by it. Copies are told apart by the
    hash a worker returns (a copy costs a parse). The answers that wait for an earlier entry's count in
    the read-ahead bound, so a file that runs to its time limit may hold the other workers back for that
    long."""

    def __init__(self, *args):
        super().__init__(*args)
        self.leases: list = []  # ring leases of the pieces the writer buffers (`ring.Lease`)

    def commit(self) -> None:
        """Write the writer's buffer as a shard (in the background), then let the workers reuse the ring
        space it held."""
        leases, self.leases = self.leases, []
        self.writer.commit(then=lambda: _release_all(leases))

    def hand_over(self, idx: int, entry: Entry) -> None:
        """Hand the file of `entry` to a parser (`worker_child._answer`, kind 'table-file')."""
        if self.pool is None:
            self.pool = borrow_pool(self.n_workers, self.limits, rings=True)
        self.pending[idx] = entry
        self.pool.submit(idx, "table-file", path=os.path.join(self.root, entry.rel), cost=entry.size)
        self.parsed += 1
        if self._ahead():  # tasks are a path each: top the workers up a batch each at a time, so that
            while self._ahead(BATCH_FILES * self.n_workers):  # a poll per file costs no CPU, nor a batch of one
                self.collect(None)

    def _ahead(self, margin: int = 0) -> bool:
        """Read ahead of the workers, but not without bound: 96 files (less `margin` in all) or 64 MiB per
        worker, counting the answers that wait for an earlier entry's."""
        pool, n = self.pool, self.n_workers
        return (pool.backlog + len(self.waiting) >= READ_AHEAD_FILES * n - margin
                or pool.queued_bytes > READ_AHEAD_BYTES * n)

    def collect(self, timeout: float | None) -> None:
        """Decide, in walk order, on the answers the workers have sent."""
        for idx, ok, payload in self.pool.poll(timeout):
            entry = self.pending.pop(idx)
            self.later(idx, lambda i=idx, e=entry, o=ok, p=payload: self.answered(i, e, o, p))

    def answered(self, idx: int, entry: Entry, ok: bool, payload) -> None:
        """Decide entry `idx` from a worker's answer (`worker_child._answer`, kind 'table-file')."""
        if ok:
            sha, ok, payload = payload
        else:  # unread, or the worker died or overran: hash it here, so its copies are not parsed again
            sha = self.hash_again(entry) if payload.startswith(WORKER_LOST) else None
        if sha is not None and (known := self.copy_record(entry, sha)) is not None:
            return self.discard(idx, known, payload if ok else None)
        if not ok:
            return self.store(idx, self.record(entry, sha, "skipped", payload))
        if len(payload) > 4:  # held until the shard with it is written (`commit`)
            self.leases.append(payload[4])
        self.store(idx, self.record(entry, sha, "ok", n_notes=payload[1][0]), payload)

    def discard(self, idx: int, rec: dict, piece: tuple | None) -> None:
        """Store `rec` without the piece a worker packed (a copy): its ring space is free again."""
        if piece is not None and len(piece) > 4:
            piece[4].release()
        self.store(idx, rec)

    def hash_again(self, entry: Entry) -> str | None:
        try:
            data = read_file_bytes(os.path.join(self.root, entry.rel), self.limits, follow_symlinks=False)
        except SkipFile:
            return None
        return hashlib.sha256(data).hexdigest()

    def drain(self) -> None:
        """Wait for every answer, then commit what the writer buffers (so the rings are free again)."""
        while self.pool is not None and self.pool.busy:
            self.collect(None)
        assert not self.waiting, "ingest left entries undecided"  # every answer has come back
        self.commit()

    def close(self) -> None:
        for lease in self.leases:  # an interrupted run: its buffered pieces are dropped
            lease.release()
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
    collecting = gc.isenabled()
    gc.disable()  # the run's records are kept to the end: collections only rescan them (~10% of its CPU)
    try:
        entries, unlisted = walk_files(os.fsencode(src))
        run = _MidiRun(src, out, n_workers, limits, writer)
        run_all(run, entries)
    finally:
        writer.release()
        if collecting:
            gc.enable()
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
    run.writer.flush()


def _release_all(leases: list) -> None:
    """Give back the ring space of pieces a shard has written (in the writer's thread: a lease is a flag
    that the parent reads before each batch it sends)."""
    for lease in leases:
        lease.release()


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
    encode = json.JSONEncoder(ensure_ascii=False).encode  # one encoder: json.dumps would make one per file
    files = ",\n  ".join(map(encode, report["files"]))
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
