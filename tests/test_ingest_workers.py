"""Ingest with two workers (the workers read, hash, parse, check and pack; the parent walks and stores, as
with one): the same dataset, byte for byte, as one worker; copies and poison files as with one worker; a
SIGKILL of the run leaves no worker behind and a rerun completes it as a fresh run would."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from conftest import REALMIDI
from midi_bytes import midi, note, track
from tunesmith.io.cache import open_dataset
from tunesmith.io.ingest import ingest_folder
from tunesmith.io.midi import Limits


def statuses(report: dict) -> dict[str, tuple]:
    return {f["path"]: (f["status"], f["reason"], f["n_notes"]) for f in report["files"]}


def shards(out: Path) -> list[tuple]:
    manifest = json.loads((out / "manifest.json").read_text())
    return [(s["name"], s["pieces"], s["files"], s["bin"], s["json"]) for s in manifest["shards"]]


def test_two_workers_write_what_one_worker_writes(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REALMIDI / "miditok_tests", src)
    first = next(p for p in sorted(src.rglob("*.mid")) if "corrupted" not in str(p))
    shutil.copy(first, src / "0 copy before.mid")  # sorts first: the original becomes its duplicate
    shutil.copy(first, src / "zz copy after.mid")
    one = ingest_folder(src, tmp_path / "one", workers=1, shard_files=5)
    two = ingest_folder(src, tmp_path / "two", workers=2, shard_files=5)
    assert statuses(one) == statuses(two) and one["summary"] == two["summary"]
    assert statuses(two)["0 copy before.mid"][0] == "ok" and statuses(two)["zz copy after.mid"][0] == "duplicate"
    assert two["summary"]["skipped"] >= 1 and len(shards(tmp_path / "two")) > 2
    assert shards(tmp_path / "one") == shards(tmp_path / "two")  # the same bytes in every shard file
    assert open_dataset(tmp_path / "one").piece_ids == open_dataset(tmp_path / "two").piece_ids


@pytest.mark.parametrize("n_workers", [1, 2])
def test_a_poison_file_and_its_copy_cost_one_worker_each_and_the_run_goes_on(tmp_path, n_workers):
    src = tmp_path / "src"
    src.mkdir()
    poison = midi(track(b"".join(note(30 + i % 60, length=1) for i in range(400_000))))
    (src / "b poison.mid").write_bytes(poison)
    (src / "d poison copy.mid").write_bytes(poison)
    for i in range(6):
        (src / f"s{i}.mid").write_bytes(midi(track(note(60 + i) + note(62 + i))))
    report = ingest_folder(src, tmp_path / "out", workers=n_workers, limits=Limits(parse_memory_bytes=8 << 20))
    found = statuses(report)
    assert found.pop("b poison.mid")[:2] == ("skipped", "out of memory: parsing needs over 8 MiB")
    # the parent hashed the file the worker could not answer for: its copy is a duplicate, never parsed
    assert found.pop("d poison copy.mid")[:2] == ("duplicate", "same content as b poison.mid")
    assert all(status == "ok" for status, _, _ in found.values()) and len(found) == 6
    assert len(open_dataset(tmp_path / "out")) == 6


def test_a_killed_two_worker_run_leaves_no_worker_and_resumes_to_a_fresh_run(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(1500):
        (src / f"s{i:04d}.mid").write_bytes(midi(track(note(30 + i % 70) + note(40 + i % 50, delta=i % 7))))
    code = (f"from tunesmith.io.ingest import ingest_folder; "
            f"ingest_folder({str(src)!r}, {str(tmp_path / 'out')!r}, workers=2, shard_files=50)")
    run = subprocess.Popen([sys.executable, "-c", code])
    manifest, workers = tmp_path / "out" / "manifest.json", set()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and run.poll() is None:
            workers |= {child.pid for child in psutil.Process(run.pid).children()}
            if manifest.exists() and json.loads(manifest.read_text() or "{}").get("shards"):
                break
            time.sleep(0.01)
        assert run.poll() is None, "the run ended before it could be killed"
        os.kill(run.pid, signal.SIGKILL)
    finally:
        run.kill()
        run.wait()
    assert len(workers) == 2
    deadline = time.monotonic() + 10  # a worker sees its socket close and exits
    while time.monotonic() < deadline and any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
                                              for p in workers):
        time.sleep(0.05)
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in workers)
    committed = len(open_dataset(tmp_path / "out"))
    assert 50 <= committed < 1500
    resumed = ingest_folder(src, tmp_path / "out", workers=2, shard_files=50)
    assert resumed["reused"] == committed and resumed["parsed"] == 1500 - committed
    fresh = ingest_folder(src, tmp_path / "fresh", workers=2, shard_files=50)
    assert statuses(resumed) == statuses(fresh)
    assert open_dataset(tmp_path / "out").piece_ids == open_dataset(tmp_path / "fresh").piece_ids


def test_shards_written_through_short_writes_are_the_same_bytes(tmp_path, monkeypatch):
    """The writer sends the pieces' byte slices with writev; a disk that takes a few bytes at a time
    (a short write splits a buffer) must get the same file."""
    from tunesmith.io import cache_writer

    src = REALMIDI / "sara_munafo_gan_nndl"
    whole = ingest_folder(src, tmp_path / "whole", workers=2, shard_files=7)
    writev = os.writev

    def stingy(fd, buffers):
        first = memoryview(buffers[0]).cast("B")
        return writev(fd, [first[:97]] if len(first) > 97 else list(buffers)[:2])

    monkeypatch.setattr(cache_writer.os, "writev", stingy)
    short = ingest_folder(src, tmp_path / "short", workers=2, shard_files=7)
    assert statuses(whole) == statuses(short) and shards(tmp_path / "whole") == shards(tmp_path / "short")
    assert len(open_dataset(tmp_path / "short")) == whole["summary"]["ok"] > 7
