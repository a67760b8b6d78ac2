"""The dataset cache checks itself: sizes and checksums in the manifest, damaged / truncated / missing
files as one UserError naming the file and the fix, `repair`, the crash window before the first
manifest, stale locks, temp-file sweeps, and the cap on parser workers."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REALMIDI
from tunesmith.core.errors import UserError
from tunesmith.core.score import scores_have_same_notes
from tunesmith.data.sources import describe_source, load_scores
from tunesmith.io import cache_checksums, workers
from tunesmith.io.cache import folder_state, open_dataset
from tunesmith.io.cache_checksums import file_checksum
from tunesmith.io.ingest import check_arguments, ingest_folder, summary_line
from tunesmith.io.midi import read_midi

SOURCES = sorted((REALMIDI / "tonejs_midi_tests").glob("*.mid"))[:6]


@pytest.fixture(autouse=True)
def new_process():
    """Each test opens datasets as a fresh process would: nothing hashed yet."""
    cache_checksums._VERIFIED.clear()
    yield
    cache_checksums._VERIFIED.clear()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> tuple[Path, Path]:
    """(source folder, dataset) of six real files in three shards of two files; copy before damaging."""
    root = tmp_path_factory.mktemp("pristine")
    src = root / "src"
    src.mkdir()
    for path in SOURCES:
        shutil.copy2(path, src / path.name)
    ingest_folder(src, root / "out", workers=1, shard_files=2)
    return src, root / "out"


@pytest.fixture()
def dataset(pristine, tmp_path) -> tuple[Path, Path]:
    src, out = pristine
    shutil.copytree(out, tmp_path / "out", symlinks=True)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["source"] == str(src.resolve())
    return src, tmp_path / "out"


def shard_files(out: Path, kind: str) -> list[Path]:
    return sorted((out / "shards").glob(f"*.{kind}"))


def flip_bits(path: Path, n_bits: int = 4) -> None:
    """Flip `n_bits` bits spread over the file (a note's pitch or time changes, the size does not)."""
    data = bytearray(path.read_bytes())
    for k in range(n_bits):
        data[(k * 7919 + len(data) // 3) % len(data)] ^= 1 << (k % 8)
    path.write_bytes(bytes(data))


def one_sentence_error(out: Path, **kwargs) -> str:
    with pytest.raises(UserError) as caught:
        open_dataset(out, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_manifest_records_size_and_checksum_of_every_shard_file(dataset):
    _, out = dataset
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["shards"]) == 3
    for shard in manifest["shards"]:
        for kind in ("bin", "json"):
            path = out / "shards" / f"{shard['name']}.{kind}"
            assert shard[kind] == {"size": path.stat().st_size, "xxh3_128": file_checksum(path)}


def blake2b_manifest(out: Path) -> None:
    """Rewrite the manifest of `out` as a writer before xxh3 left it: blake2b-128 of every shard file."""
    manifest = json.loads((out / "manifest.json").read_text())
    for shard in manifest["shards"]:
        for kind in ("bin", "json"):
            path = out / "shards" / f"{shard['name']}.{kind}"
            shard[kind] = {"size": path.stat().st_size, "blake2b": file_checksum(path, algorithm="blake2b")}
    (out / "manifest.json").write_text(json.dumps(manifest))


def test_shards_checksummed_with_blake2b_still_open_verify_and_resume(dataset):
    src, out = dataset
    blake2b_manifest(out)
    assert len(open_dataset(out)) == len(SOURCES)
    flip_bits(shard_files(out, "bin")[1])
    cache_checksums._VERIFIED.clear()
    assert one_sentence_error(out).startswith(f"dataset {out} is damaged: shards/000001.bin does not match")
    report = ingest_folder(src, out, workers=1, repair=True)  # the damaged shard is re-parsed: xxh3 then
    assert report["parsed"] == 2 and report["summary"]["ok"] == len(SOURCES)
    shards = json.loads((out / "manifest.json").read_text())["shards"]
    assert [sorted(s["bin"]) for s in shards] == [["blake2b", "size"]] * 2 + [["size", "xxh3_128"]]
    cache_checksums._VERIFIED.clear()
    assert len(open_dataset(out, verify=True)) == len(SOURCES)


def test_flipped_bits_in_any_shard_are_detected_with_the_fix(dataset):
    src, out = dataset
    bins = shard_files(out, "bin")
    for path in bins:
        flip_bits(path)
    message = one_sentence_error(out)
    assert message.startswith(f"dataset {out} is damaged: shards/000000.bin does not match its checksum")
    assert "(and 2 more damaged shard(s))" in message
    assert f"tunesmith ingest {src.resolve()} --out {out} --repair" in message
    with pytest.raises(UserError, match="000000.bin does not match"):
        load_scores(str(out))  # the path training takes
    with pytest.raises(UserError, match="is damaged"):
        ingest_folder(src, out, workers=1)  # a rerun notices too


def test_each_damaged_shard_is_named(dataset):
    _, out = dataset
    detected = 0
    for path in [*shard_files(out, "bin"), *shard_files(out, "json")]:
        original = path.read_bytes()
        flip_bits(path)
        cache_checksums._VERIFIED.clear()
        detected += f"shards/{path.name}" in one_sentence_error(out)
        path.write_bytes(original)
    assert detected == 6
    cache_checksums._VERIFIED.clear()
    assert len(open_dataset(out)) == len(SOURCES)


def test_hashes_once_per_process_unless_asked(dataset, monkeypatch):
    _, out = dataset
    calls = []
    real = cache_checksums.file_checksum
    monkeypatch.setattr(cache_checksums, "file_checksum",
                        lambda path, **kw: calls.append(path.name) or real(path, **kw))
    open_dataset(out)
    assert sorted(calls) == sorted(p.name for p in [*shard_files(out, "bin"), *shard_files(out, "json")])
    calls.clear()
    open_dataset(out)
    assert sorted(calls) == [p.name for p in shard_files(out, "json")]  # indexes are read whole anyway
    calls.clear()
    open_dataset(out, verify=True)
    assert len(calls) == 6
    # A change that keeps size and mtime is only seen by a new process or verify=True.
    path = shard_files(out, "bin")[1]
    stat = path.stat()
    flip_bits(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert "shards/000001.bin does not match" in one_sentence_error(out, verify=True)
    with pytest.raises(UserError, match="000001.bin does not match"):
        load_scores(str(out), verify=True)


def test_truncated_empty_or_missing_shard_files_are_one_sentence_even_without_hashing(dataset):
    _, out = dataset
    bins, jsons = shard_files(out, "bin"), shard_files(out, "json")
    size = bins[0].stat().st_size
    os.truncate(bins[0], size // 2)
    assert f"shards/000000.bin has {size // 2} bytes instead of {size}" in one_sentence_error(out, verify=False)
    bins[0].write_bytes(b"")
    assert f"shards/000000.bin has 0 bytes instead of {size}" in one_sentence_error(out, verify=False)
    bins[0].unlink()
    assert "shards/000000.bin is missing" in one_sentence_error(out, verify=False)
    shutil.copy2(bins[1], bins[0])
    jsons[2].write_text(jsons[2].read_text()[:-10])
    message = one_sentence_error(out)
    assert "000000.bin" in message and "(and 1 more damaged shard(s))" in message


@pytest.mark.parametrize("damage, expected", [
    (lambda m: m.write_bytes(b""), "manifest.json is empty"),
    (lambda m: m.write_bytes(m.read_bytes()[:100]), "manifest.json is not valid JSON (truncated or damaged)"),
    (lambda m: m.write_text("[1, 2]"), "manifest.json is not a tunesmith dataset manifest"),
    (lambda m: m.write_text(re.sub(r'"version": \d+', '"version": 1', m.read_text())), "another tunesmith version"),
    (lambda m: m.write_text(m.read_text().replace('"xxh3_128"', '"md5"')), "damaged shard list"),
    (lambda m: m.unlink(), "manifest.json is missing"),
])
def test_damaged_or_missing_manifests_are_one_sentence_and_repair_rebuilds(dataset, damage, expected):
    src, out = dataset
    damage(out / "manifest.json")
    assert describe_source(str(out)) == "dataset"
    message = one_sentence_error(out)
    assert expected in message and f"--out {out} --repair" in message
    with pytest.raises(UserError, match="--repair"):
        ingest_folder(src, out, workers=1)
    report = ingest_folder(src, out, workers=1, repair=True)  # the whole cache is rebuilt
    assert report["parsed"] == len(SOURCES) and report["summary"]["ok"] == len(SOURCES)
    assert len(open_dataset(out)) == len(SOURCES)


def test_repair_rebuilds_only_the_damaged_shards(dataset):
    src, out = dataset
    before = {pid: score for pid, score in open_dataset(out).iter_scores()}
    flip_bits(shard_files(out, "bin")[1])
    shard_files(out, "json")[2].unlink()
    report = ingest_folder(src, out, workers=1, repair=True)
    assert report["repaired"] == ["000001", "000002"]
    assert (report["parsed"], report["reused"]) == (4, 2)  # the four files of shards 1 and 2
    names = sorted(p.name for p in (out / "shards").iterdir())
    assert names == ["000000.bin", "000000.json", "000001.bin", "000001.json"]  # old 1 and 2 swept
    cache_checksums._VERIFIED.clear()
    repaired = open_dataset(out)
    assert sorted(repaired.piece_ids) == sorted(before)
    for pid, score in repaired.iter_scores():
        assert scores_have_same_notes(score, before[pid])
    again = ingest_folder(src, out, workers=1)
    assert (again["parsed"], again["repaired"]) == (0, [])
    assert summary_line(report).endswith("0 duplicate; rebuilt 2 damaged shard(s)")


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("debris", ["shards only", "shards and temp files", "lock only"])
def test_a_first_run_killed_before_its_manifest_is_continued(tmp_path, debris):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    shutil.copy2(SOURCES[0], src / "a.mid")
    out.mkdir()
    (out / ".ingest.lock").write_text(f"{dead_pid()}\n")
    if debris != "lock only":
        (out / "shards").mkdir()
    if debris == "shards and temp files":
        (out / ".manifest.json.4242.0badcafe.tmp").write_text('{"format": "tunes')
        (out / "shards" / ".000000.bin.4242.0badcafe.tmp").write_bytes(b"\0" * 100)
    assert folder_state(out) == "unfinished"
    assert "holds no data yet" in one_sentence_error(out)
    report = ingest_folder(src, out, workers=1)
    assert report["summary"]["ok"] == 1 and len(open_dataset(out)) == 1
    assert sorted(p.name for p in out.iterdir()) == [
        ".ingest.lock", "manifest.json", "quarantine.txt", "report.json", "shards"]
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["000000.bin", "000000.json"]
    assert (out / ".ingest.lock").read_text() == f"{os.getpid()}\n"  # the stale lock was taken over


def test_a_folder_of_other_things_is_still_refused(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "out" / "shards").mkdir(parents=True)
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not a tunesmith dataset"):
        ingest_folder(tmp_path / "src", tmp_path / "out")
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_worker_counts_are_capped_at_the_cores_with_a_warning(tmp_path, caplog):
    (tmp_path / "src").mkdir()
    cores = workers.usable_cores()
    with caplog.at_level(logging.WARNING, logger="tunesmith.io.workers"):
        assert check_arguments(tmp_path / "src", tmp_path / "out", 10_000)[2] == cores
    assert f"10000 parser workers requested but only {cores} CPU cores are usable" in caplog.text
    assert check_arguments(tmp_path / "src", tmp_path / "out", 0)[2] == cores  # 0: one per core
    assert check_arguments(tmp_path / "src", tmp_path / "out", 1)[2] == 1
    with pytest.raises(UserError, match="--workers must be 0"):
        check_arguments(tmp_path / "src", tmp_path / "out", -1)
    with workers.ParserPool(10_000, workers.Limits()) as pool:
        assert len(pool._workers) == cores


def full_disk_after(n_writes: int):
    """A write_atomic that fails with ENOSPC (leaving its temp file, as a killed write would) after
    `n_writes` successful writes."""
    import errno

    from tunesmith.io.atomic import write_atomic

    done = [0]

    def write(path, data):
        if done[0] >= n_writes:
            Path(path).with_name(f".{Path(path).name}.1.deadbeef.tmp").write_bytes(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        done[0] += 1
        write_atomic(path, data)

    return write


@pytest.mark.parametrize("n_writes", [0, 1, 2, 3, 5, 100])  # 100: only the report fails
def test_a_full_disk_is_one_sentence_and_the_next_run_completes(tmp_path, monkeypatch, n_writes):
    from tunesmith.io import cache_writer, ingest

    src = tmp_path / "src"
    src.mkdir()
    for path in SOURCES[:4]:
        shutil.copy2(path, src / path.name)
    monkeypatch.setattr(cache_writer, "write_atomic", full_disk_after(n_writes))
    monkeypatch.setattr(ingest, "write_atomic", full_disk_after(0))
    with pytest.raises(UserError, match="No space left on device"):
        ingest_folder(src, tmp_path / "out", workers=1, shard_files=2)
    monkeypatch.undo()
    report = ingest_folder(src, tmp_path / "out", workers=1, shard_files=2)
    assert report["summary"]["ok"] == 4 and len(open_dataset(tmp_path / "out")) == 4
    assert not list((tmp_path / "out").rglob("*.tmp"))


def test_pieces_of_every_shard_read_back_with_their_names_and_order(pristine):
    """The compact reader index (ids, rows and paths as arrays, track names as one blob per shard)
    gives back each piece of three shards as parsing its file does, in path order."""
    src, out = pristine
    data = open_dataset(out)
    assert data.paths == sorted(p.name for p in SOURCES)
    for i, (piece_id, cached) in enumerate(data.iter_scores()):
        direct = read_midi(src / data.paths[i])
        assert piece_id == hashlib.sha256((src / data.paths[i]).read_bytes()).hexdigest()
        assert [(t.name, t.program, t.is_drum) for t in cached.tracks] == [
            (t.name, t.program, t.is_drum) for t in direct.tracks]
        assert scores_have_same_notes(direct, cached, ("pitch", "start", "duration", "velocity"))
