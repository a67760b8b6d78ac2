"""`tunesmith ingest SRC_DIR --audio --out DATASET_DIR`: a folder of recordings -> a deduplicated
dataset of equal audio chunks (format: `audio_cache.py`), with MIDI ingest's guarantees.

The parent walks the folder (regular files with an audio name, `audio_input.AUDIO_SUFFIXES`, no
symlink following, names as raw bytes), reads and hashes each file, decides what it can without
decoding (not a regular file, too large, unchanged since the last run, same content as a file
already seen: sha256), and hands the rest to decoder processes: each file is decoded in a forked
child (`read_audio_bytes`: format checks, caps, resampling; then `chunks`) under a wall-clock limit
and an address-space cap, so a file that hangs or crashes libsndfile costs one skip, never the run.
Chunks are stored as int16 at the dataset's sample rate and channel count; silent chunks and a
partial last chunk are left out, and a file with no chunk left is skipped with its reason.
`report.json` and `quarantine.txt` describe every audio-named file of the walk (as for MIDI); a rerun
resumes (files decided by earlier runs are not decoded again, except transient failures).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass
from multiprocessing.connection import wait
from pathlib import Path

import numpy as np

from tunesmith.core.errors import SkipFile, UserError
from tunesmith.io import ingest
from tunesmith.io.audio_cache import PCM_SCALE, AudioDatasetWriter
from tunesmith.io.audio_input import MAX_BYTES, MAX_SECONDS, chunks, is_audio_name, read_audio_bytes
from tunesmith.io.ingest import Entry, summary_line
from tunesmith.io.midi import Limits, display_name
from tunesmith.io.workers import cap_workers

TRANSIENT = ("decode timed out", "decoder crashed", "out of memory", "cannot open", "cannot read")
__all__ = ["AudioSettings", "ingest_audio_folder", "summary_line"]


@dataclass(frozen=True)
class AudioSettings:
    """What a dataset holds: chunks of `chunk_seconds` (starts `hop_seconds` apart; default back to
    back) at `sample_rate` Hz with `channels` (1 or 2); files above `max_seconds` or `max_bytes`
    are skipped; each decode may take `decode_seconds` and add `decode_memory_bytes` of memory."""

    sample_rate: int = 12000
    channels: int = 1
    chunk_seconds: float = 10.0
    hop_seconds: float | None = None
    max_seconds: float = MAX_SECONDS
    max_bytes: int = MAX_BYTES
    decode_seconds: float = 120.0
    decode_memory_bytes: int = 4 << 30

    def check(self) -> None:
        """UserError naming the first unusable setting."""
        from tunesmith.io.audio_input import check_target

        try:
            check_target(self.sample_rate, self.channels)
        except ValueError as error:
            raise UserError(str(error)) from None
        hop = self.chunk_seconds if self.hop_seconds is None else self.hop_seconds
        if not (0 < self.chunk_seconds <= self.max_seconds and hop > 0 and self.decode_seconds > 0):
            raise UserError(f"chunks must last 0-{self.max_seconds:.0f} s and their hop more than 0 s, "
                            f"not {self.chunk_seconds} and {hop}")

    def stored(self) -> dict:
        """The settings a dataset is built with (a rerun must use the same)."""
        return {k: v for k, v in asdict(self).items() if k not in ("decode_seconds", "decode_memory_bytes")}


def decode_chunks(data: bytes, settings: AudioSettings) -> np.ndarray:
    """The file's chunks as int16 (k, channels, samples); SkipFile when it has none."""
    samples = read_audio_bytes(data, settings.sample_rate, settings.channels, settings.max_seconds,
                               settings.max_bytes)
    parts = list(chunks(samples, settings.sample_rate, settings.chunk_seconds, settings.hop_seconds))
    if not parts:
        seconds = samples.shape[1] / settings.sample_rate
        raise SkipFile(f"too short: {seconds:.1f} s of sound, a chunk lasts {settings.chunk_seconds:g} s"
                       if seconds < settings.chunk_seconds else "silent: no chunk above the silence threshold")
    return np.rint(np.stack(parts) * PCM_SCALE).astype(np.int16)


def _child(conn, data: bytes, settings: AudioSettings) -> None:
    """Decoder process: cap memory, silence the decoders' own warnings (mpg123 prints some on
    stderr; the skip reason says what matters), decode, send ("ok", chunks) or ("skip", reason)."""
    from tunesmith.io.worker_child import limit_address_space

    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    limit_address_space(settings.decode_memory_bytes)
    try:
        conn.send(("ok", decode_chunks(data, settings)))
    except SkipFile as reason:
        conn.send(("skip", str(reason)))
    except MemoryError:
        conn.send(("skip", f"out of memory: decoding needs over {settings.decode_memory_bytes >> 20} MiB"))
    except Exception as error:  # anything libsndfile, soxr or numpy throws: one line, never a crash
        conn.send(("skip", f"decode error: {type(error).__name__}: {error}"[:240]))
    finally:
        conn.close()


class Decoders:
    """At most `n` decoder processes at once, one per file, each killed at its deadline."""

    def __init__(self, n: int, settings: AudioSettings):
        self.n, self.settings = n, settings
        # fork: the child needs nothing re-imported (spawn where there is no fork, e.g. Windows)
        methods = multiprocessing.get_all_start_methods()
        self.context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        self.running: dict = {}  # key -> (process, connection, deadline)

    @property
    def full(self) -> bool:
        return len(self.running) >= self.n

    def submit(self, key, data: bytes) -> None:
        receive, send = self.context.Pipe(duplex=False)
        process = self.context.Process(target=_child, args=(send, data, self.settings), daemon=True)
        process.start()
        send.close()
        self.running[key] = (process, receive, time.monotonic() + self.settings.decode_seconds)

    def poll(self, timeout: float | None) -> list[tuple]:
        """Finished tasks as (key, ok, chunks or reason), waiting at most `timeout` s (None: until one)."""
        if not self.running:
            return []
        soonest = min(deadline for _, _, deadline in self.running.values()) - time.monotonic()
        wait([conn for _, conn, _ in self.running.values()],
             max(0.0, soonest if timeout is None else min(timeout, soonest)))
        done = []
        for key, (process, conn, deadline) in list(self.running.items()):
            if conn.poll():
                try:
                    status, payload = conn.recv()
                except (EOFError, OSError):
                    process.join()
                    status, payload = "skip", f"decoder crashed (exit code {process.exitcode})"
                done.append((key, status == "ok", payload))
            elif time.monotonic() >= deadline:
                process.kill()
                done.append((key, False, f"decode timed out after {self.settings.decode_seconds:.0f} s"))
            else:
                continue
            process.join()
            conn.close()
            del self.running[key]
        return done

    def close(self) -> None:
        for process, conn, _ in self.running.values():
            process.kill()
            process.join()
            conn.close()
        self.running.clear()


def ingest_audio_folder(src: Path, out: Path, settings: AudioSettings = AudioSettings(),  # noqa: B008 (frozen)
                        workers: int = 0, repair: bool = False, shard_chunks: int = 256) -> dict:
    """Ingest every audio file under `src` into the audio dataset folder `out` (created or resumed).

    Returns the report written to `out/report.json` ({"files": [...], "summary": {...}}) plus
    "decoded" (files decoded this run), "reused" (decided by an earlier run), "repaired" and "seconds".
    Bad files are reported, never raised; unusable arguments, another source or other settings for
    an existing dataset, and a damaged dataset (without `repair`) raise UserError.
    """
    settings.check()
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise UserError(f"source folder {src} does not exist" if not src.exists()
                        else f"{src} is a file, not a folder: give the folder that holds the recordings")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file: give a new or existing dataset folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").exists() and not (out / "shards").is_dir():
        raise UserError(f"--out {out} is a non-empty folder that is not a tunesmith dataset")
    started, src = time.perf_counter(), src.resolve()
    writer = AudioDatasetWriter(out, str(src), settings.stored(), shard_chunks=shard_chunks, repair=repair)
    run = _Run(src, writer, settings, cap_workers(workers))
    try:
        entries, unlisted = ingest.walk_files(run.root, wanted=is_audio_name)
        ingest.run_all(run, entries)
    finally:
        writer.release()
    report = _report(run.records, unlisted)
    ingest._write_report(out, report)
    return {**report, "decoded": run.parsed, "reused": run.reused, "repaired": writer.repaired,
            "seconds": round(time.perf_counter() - started, 3)}


class _Run(ingest._Run):
    """One run: MIDI ingest's triage (regular file, unchanged since the last run, same content as a
    file already seen) and bookkeeping, with decoder processes instead of MIDI parsers."""

    def __init__(self, src: Path, writer: AudioDatasetWriter, settings: AudioSettings, n_workers: int):
        super().__init__(src, writer.out, n_workers, Limits(max_file_bytes=settings.max_bytes), writer)
        self.decoders = Decoders(n_workers, settings)

    def record(self, entry: Entry, sha: str | None, status: str, reason: str | None = None,
               n_chunks: int | None = None) -> dict:
        return {"path": os.fsdecode(entry.rel), "size": entry.size, "mtime_ns": entry.mtime_ns,
                "sha256": sha, "status": status, "reason": reason, "n_chunks": n_chunks}

    def final(self, record: dict) -> bool:
        """A committed verdict this run keeps: skips for transient reasons are tried again."""
        return record["status"] != "skipped" or not (record["reason"] or "").startswith(TRANSIENT)

    def submit(self, idx: int, entry: Entry, sha: str, data: bytes) -> None:
        while self.decoders.full:
            self.collect(None)
        self.pending[idx] = (entry, sha)
        self.decoders.submit(idx, data)
        self.parsed += 1

    def collect(self, timeout: float | None) -> None:
        for idx, ok, payload in self.decoders.poll(timeout):
            entry, sha = self.pending.pop(idx)
            if ok:
                self.decide(idx, self.record(entry, sha, "ok", n_chunks=len(payload)), payload)
            else:
                self.decide(idx, self.record(entry, sha, "skipped", payload))

    def drain(self) -> None:
        while self.decoders.running:
            self.collect(None)

    def close(self) -> None:
        self.decoders.close()


def _report(records: list[dict], unlisted: list[tuple[bytes, str]]) -> dict:
    files = [{"path": display_name(os.fsencode(r["path"])), "status": r["status"], "reason": r["reason"],
              "n_chunks": r["n_chunks"] if r["status"] == "ok" else None} for r in records]
    files += [{"path": display_name(rel) or ".", "status": "skipped", "reason": reason, "n_chunks": None}
              for rel, reason in unlisted]
    counts = Counter(f["status"] for f in files)
    summary = {k: counts.get(k, 0) for k in ("ok", "skipped", "duplicate")}
    summary["chunks"] = sum(f["n_chunks"] or 0 for f in files)
    return {"files": files, "summary": summary}
