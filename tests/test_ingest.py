"""`tunesmith ingest` end to end: real files, the report's exact shape, the cache against direct reads,
duplicates, resume (also after a kill), bad entries in a folder, argument errors and exit codes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import CORRUPT_MIDI, REALMIDI, real_midi_files
from midi_bytes import MALFORMED, midi, note, simple_song, tempo, track, vlq
from tunesmith.core.errors import SkipFile, UserError
from tunesmith.core.score import scores_have_same_notes
from tunesmith.io import cache_writer, workers
from tunesmith.io.cache import is_dataset_dir, open_dataset
from tunesmith.io.ingest import ingest_folder, summary_line
from tunesmith.io.midi import Limits, read_midi

ALL_FIELDS = ("pitch", "start", "duration", "velocity", "program", "is_drum")


@pytest.fixture(scope="session")
def real_dataset(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("real") / "dataset"
    return out, ingest_folder(REALMIDI, out, workers=2)


@pytest.fixture()
def parse_calls(monkeypatch) -> list:
    """Every file handed to a parser process by ingest, in order."""
    calls: list = []
    submit = workers.ParserPool.submit

    def counting_submit(self, key, kind, path=None, data=None, **options):
        calls.append(key)
        submit(self, key, kind, path, data, **options)

    monkeypatch.setattr(workers.ParserPool, "submit", counting_submit)
    return calls


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def statuses(report: dict) -> dict[str, tuple]:
    return {f["path"]: (f["status"], f["reason"]) for f in report["files"]}


def test_real_files_all_ingest_except_the_corrupt_one(real_dataset):
    _, report = real_dataset
    by_path = {f["path"]: f for f in report["files"]}
    corrupt = by_path.pop(str(CORRUPT_MIDI.relative_to(REALMIDI)))
    assert corrupt == {"path": str(CORRUPT_MIDI.relative_to(REALMIDI)), "status": "skipped",
                       "reason": "parse error: Get control_value=168", "n_notes": None}
    first_with: dict[str, str] = {}
    for path in real_midi_files():
        rel = str(path.relative_to(REALMIDI))
        entry = by_path.pop(rel)
        original = first_with.setdefault(sha(path), rel)
        if original == rel:
            assert (entry["status"], entry["n_notes"]) == ("ok", read_midi(path).note_num()), rel
        else:
            assert entry["status"] == "duplicate" and entry["reason"] == f"same content as {original}"
    assert by_path == {}
    assert report["summary"] == {"ok": len(first_with), "skipped": 1,
                                 "duplicate": len(real_midi_files()) - len(first_with)}


def test_report_json_has_exactly_the_documented_shape(real_dataset):
    out, returned = real_dataset
    report = json.loads((out / "report.json").read_text())
    assert set(report) == {"files", "summary"}
    assert set(report["summary"]) == {"ok", "skipped", "duplicate"}
    for entry in report["files"]:
        assert set(entry) == {"path", "status", "reason", "n_notes"}
        assert isinstance(entry["path"], str) and entry["status"] in {"ok", "skipped", "duplicate"}
        assert (entry["reason"] is None) == (entry["status"] == "ok")
        assert isinstance(entry["n_notes"], int) if entry["status"] == "ok" else entry["n_notes"] is None
    counts = {s: sum(f["status"] == s for f in report["files"]) for s in ("ok", "skipped", "duplicate")}
    assert report["summary"] == counts
    assert report["files"] == returned["files"]
    assert (out / "quarantine.txt").read_text().splitlines() == [
        f"{CORRUPT_MIDI.relative_to(REALMIDI)}\tparse error: Get control_value=168"]


def test_cached_scores_equal_reading_the_files_directly(real_dataset):
    out, report = real_dataset
    dataset = open_dataset(out)
    assert is_dataset_dir(out) and len(dataset) == report["summary"]["ok"]
    for i, (piece_id, cached) in enumerate(dataset.iter_scores()):
        source = REALMIDI / dataset.paths[i]
        direct = read_midi(source)
        assert piece_id == sha(source) == dataset.piece_ids[i]
        assert cached.ticks_per_quarter == direct.ticks_per_quarter
        assert scores_have_same_notes(direct, cached, ALL_FIELDS), source
        assert [(t.time, t.mspq) for t in cached.tempos] == [(t.time, t.mspq) for t in direct.tempos]
        assert ([(s.time, s.numerator, s.denominator) for s in cached.time_signatures]
                == [(s.time, s.numerator, s.denominator) for s in direct.time_signatures])
        assert ([(t.name, t.program, t.is_drum) for t in cached.tracks]
                == [(t.name, t.program, t.is_drum) for t in direct.tracks])


def test_note_tables_are_read_only_memory_maps_matching_the_scores(real_dataset):
    dataset = open_dataset(real_dataset[0])
    busiest = max(range(len(dataset)), key=lambda i: len(dataset.notes(i)["pitch"]))
    table, score = dataset.notes(busiest), dataset.score(busiest)
    assert not table["pitch"].flags.writeable
    assert len(table["pitch"]) == score.note_num() and set(table) == set(ALL_FIELDS) | {"track"}
    for k, track_ in enumerate(score.tracks):
        rows = table["track"] == k
        assert np.array_equal(table["start"][rows], track_.notes.numpy()["time"])
        assert np.all(table["program"][rows] == track_.program)
        assert np.all(table["is_drum"][rows] == track_.is_drum)


def write_song(folder: Path, name: str | bytes, data: bytes | None = None) -> None:
    path = os.path.join(os.fsencode(folder), os.fsencode(name))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(simple_song() if data is None else data)


def test_copies_are_reported_as_duplicates_and_stored_once(tmp_path):
    write_song(tmp_path / "src", "a.mid")
    write_song(tmp_path / "src", "b copy.mid")
    write_song(tmp_path / "src", "sub/c.MID")
    report = ingest_folder(tmp_path / "src", tmp_path / "out", workers=1)
    assert statuses(report) == {"a.mid": ("ok", None), "b copy.mid": ("duplicate", "same content as a.mid"),
                                "sub/c.MID": ("duplicate", "same content as a.mid")}
    assert len(open_dataset(tmp_path / "out")) == 1
    assert summary_line(report) == "1 ok, 0 skipped, 2 duplicate"


def test_rerun_parses_nothing_new_then_only_what_changed(tmp_path, parse_calls):
    src, out = tmp_path / "src", tmp_path / "out"
    for i in range(6):
        write_song(src, f"song{i}.mid", midi(track(note(60 + i) + note(62 + i))))
    first = ingest_folder(src, out, workers=1)
    assert len(parse_calls) == 6 and first["summary"]["ok"] == 6
    second = ingest_folder(src, out, workers=1)
    assert len(parse_calls) == 6 and (second["parsed"], second["reused"]) == (0, 6)
    assert second["files"] == first["files"]
    write_song(src, "new.mid", midi(track(note(70))))
    write_song(src, "song0.mid", midi(track(note(40) + note(41) + note(42))))  # edited in place
    third = ingest_folder(src, out, workers=1)
    assert len(parse_calls) == 8 and third["summary"] == {"ok": 7, "skipped": 0, "duplicate": 0}
    dataset = open_dataset(out)
    assert len(dataset) == 7  # the old song0 is gone: only its new content is listed
    assert sorted(dataset.notes(dataset.paths.index("song0.mid"))["pitch"].tolist()) == [40, 41, 42]


@pytest.mark.parametrize("n_workers", [1, 2])  # two: answers come in any order
def test_a_killed_run_loses_at_most_its_current_shard(tmp_path, parse_calls, monkeypatch, n_workers):
    src, out = tmp_path / "src", tmp_path / "out"
    for i in range(23):
        write_song(src, f"s{i:02d}.mid", midi(track(tempo(400_000 + i) + note(40 + i))))
    real_commit, commits = cache_writer.DatasetWriter.commit, []

    def dying_commit(self, *args, **kwargs):
        if len(commits) == 2 and self._records:
            (out / "shards" / "000002.bin").write_bytes(b"half-written")  # debris of the interrupted write
            raise KeyboardInterrupt
        commits.append(len(self._records))
        real_commit(self, *args, **kwargs)

    monkeypatch.setattr(cache_writer.DatasetWriter, "commit", dying_commit)
    with pytest.raises(KeyboardInterrupt):
        ingest_folder(src, out, workers=n_workers, shard_files=5)
    monkeypatch.setattr(cache_writer.DatasetWriter, "commit", real_commit)
    assert commits == [5, 5] and len(open_dataset(out)) == 10  # what was committed is readable
    calls_before = len(parse_calls)
    resumed = ingest_folder(src, out, workers=n_workers, shard_files=5)
    assert len(parse_calls) - calls_before == 13 and resumed["reused"] == 10
    shards = sorted(os.listdir(out / "shards"))
    assert shards == [f"{i:06d}.{ext}" for i in range(5) for ext in ("bin", "json")]  # debris removed
    fresh = ingest_folder(src, tmp_path / "fresh", workers=n_workers)
    assert resumed["files"] == fresh["files"]
    assert open_dataset(out).piece_ids == open_dataset(tmp_path / "fresh").piece_ids


def test_a_run_killed_before_its_first_shard_leaves_a_dataset_to_resume(tmp_path):
    write_song(tmp_path / "src", "a.mid")
    cache_writer.DatasetWriter(tmp_path / "out", str((tmp_path / "src").resolve()), {}).release()
    assert is_dataset_dir(tmp_path / "out") and len(open_dataset(tmp_path / "out")) == 0
    assert ingest_folder(tmp_path / "src", tmp_path / "out")["summary"]["ok"] == 1


def test_one_writer_at_a_time(tmp_path):
    write_song(tmp_path / "src", "a.mid")
    holder = cache_writer.DatasetWriter(tmp_path / "out", str((tmp_path / "src").resolve()), {})
    with pytest.raises(UserError, match="another ingest is writing"):
        ingest_folder(tmp_path / "src", tmp_path / "out")
    holder.release()
    assert ingest_folder(tmp_path / "src", tmp_path / "out")["summary"]["ok"] == 1


def test_skips_are_rechecked_when_the_limits_change(tmp_path, parse_calls):
    write_song(tmp_path / "src", "three.mid", midi(track(note(60) + note(62) + note(64))))
    strict = ingest_folder(tmp_path / "src", tmp_path / "out", limits=Limits(max_notes=2))
    assert statuses(strict) == {"three.mid": ("skipped", "too many notes: 3 (cap 2)")}
    again = ingest_folder(tmp_path / "src", tmp_path / "out", limits=Limits(max_notes=2))
    assert again["parsed"] == 0 and len(parse_calls) == 1
    relaxed = ingest_folder(tmp_path / "src", tmp_path / "out")
    assert statuses(relaxed) == {"three.mid": ("ok", None)} and len(parse_calls) == 2
    assert len(open_dataset(tmp_path / "out")) == 1


def test_bad_entries_in_a_folder_are_reported_and_the_run_goes_on(tmp_path):
    src, elsewhere = tmp_path / "src", tmp_path / "elsewhere"
    write_song(src, "good.mid")
    write_song(src, b"caf\xe9 \xff.mid", midi(track(note(50))))
    write_song(src, "bad.mid", b"MThd junk")
    write_song(src, "notes.txt", b"not music")
    write_song(elsewhere, "hidden.mid", midi(track(note(51))))
    os.mkfifo(src / "pipe.mid")
    (src / "loop.mid").symlink_to(src / "loop.mid")
    (src / "link.mid").symlink_to(src / "good.mid")
    (src / "linked-folder").symlink_to(elsewhere, target_is_directory=True)
    started = time.monotonic()
    report = ingest_folder(src, tmp_path / "out", workers=2)
    assert time.monotonic() - started < 10
    assert statuses(report) == {
        "bad.mid": ("skipped", "not MIDI: 9 bytes, too short for a MIDI header"),
        "caf\\xe9 \\xff.mid": ("ok", None),
        "good.mid": ("ok", None),
        "link.mid": ("skipped", "not a regular file: symbolic link (not followed)"),
        "loop.mid": ("skipped", "not a regular file: symbolic link (not followed)"),
        "pipe.mid": ("skipped", "not a regular file: FIFO"),
    }
    assert summary_line(report) == "2 ok, 4 skipped (3 not a regular file, 1 not MIDI), 0 duplicate"
    assert open_dataset(tmp_path / "out").paths == ["caf\\xe9 \\xff.mid", "good.mid"]


@pytest.mark.parametrize("n_workers", [1, 2])
def test_ingest_gives_every_malformed_file_the_verdict_read_midi_gives(tmp_path, n_workers):
    crowd = b"".join(vlq(0) + bytes([0x90 | i % 16, 30 + i % 60, 80]) for i in range(1500))
    crowd += b"".join(vlq(480 if i == 0 else 0) + bytes([0x80 | i % 16, 30 + i % 60, 0]) for i in range(1500))
    files = {f"{name}.mid": data for name, (data, _) in MALFORMED.items()}
    files |= {"crowded.mid": midi(track(crowd)), "good.mid": simple_song()}
    for name, data in files.items():
        write_song(tmp_path / "src", name, data)
    report = ingest_folder(tmp_path / "src", tmp_path / "out", workers=n_workers)
    for entry in report["files"]:
        try:
            expected = ("ok", None, read_midi(tmp_path / "src" / entry["path"]).note_num())
        except SkipFile as reason:
            expected = ("skipped", str(reason), None)
        assert (entry["status"], entry["reason"], entry["n_notes"]) == expected
    assert report["summary"] == {"ok": 1, "skipped": len(files) - 1, "duplicate": 0}
    assert statuses(report)["crowded.mid"][1].startswith("too many simultaneous notes: 1500")


def test_unusable_arguments_raise_user_errors(tmp_path):
    write_song(tmp_path / "src", "a.mid")
    (tmp_path / "file.mid").write_bytes(simple_song())
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "keep.txt").write_text("mine")
    cases = [
        (tmp_path / "missing", tmp_path / "o1", 0, "does not exist"),
        (tmp_path / "file.mid", tmp_path / "o2", 0, "is a file, not a folder"),
        (tmp_path / "src", tmp_path / "file.mid", 0, "is a file"),
        (tmp_path / "src", tmp_path / "junk", 0, "not a tunesmith dataset"),
        (tmp_path / "src", tmp_path / "o3", -1, "--workers"),
    ]
    for src, out, n_workers, message in cases:
        with pytest.raises(UserError, match=message):
            ingest_folder(src, out, workers=n_workers)
    ingest_folder(tmp_path / "src", tmp_path / "o4", workers=1)
    write_song(tmp_path / "other", "b.mid")
    with pytest.raises(UserError, match="was built from"):
        ingest_folder(tmp_path / "other", tmp_path / "o4", workers=1)


def test_empty_folder_gives_an_empty_dataset(tmp_path):
    (tmp_path / "src").mkdir()
    report = ingest_folder(tmp_path / "src", tmp_path / "out")
    assert report["files"] == [] and report["summary"] == {"ok": 0, "skipped": 0, "duplicate": 0}
    assert is_dataset_dir(tmp_path / "out") and len(open_dataset(tmp_path / "out")) == 0
    assert not is_dataset_dir(tmp_path / "src")
    with pytest.raises(UserError, match="is not a tunesmith dataset folder"):
        open_dataset(tmp_path / "src")


def test_cli_exits_0_on_bad_files_and_2_on_bad_arguments(tmp_path):
    write_song(tmp_path / "src", "good.mid")
    write_song(tmp_path / "src", "bad.mid", b"\0" * 40)
    command = [sys.executable, "-m", "tunesmith.cli", "ingest", str(tmp_path / "src"), "--out"]
    done = subprocess.run([*command, str(tmp_path / "out"), "--workers", "1"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("1 ok, 1 skipped (1 not MIDI), 0 duplicate; report in ")
    shutil.rmtree(tmp_path / "src")
    failed = subprocess.run([*command, str(tmp_path / "out2")], capture_output=True, text=True)
    assert failed.returncode == 2 and failed.stderr.strip().count("\n") == 0
    assert failed.stderr.startswith("error: source folder") and "does not exist" in failed.stderr
