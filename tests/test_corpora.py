"""Bundled music21 corpora: our stream -> Score converter against music21, caches, CLI list/export.

JSB and LPD loaders are tested in test_corpora_files.py. No test parses a whole music21 corpus: each
uses a limit or a handful of files (music21 parses about 4-40 pieces per second).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from symusic import Score

from tunesmith import corpora
from tunesmith.core.errors import UserError
from tunesmith.corpora import CORPORA, Corpus, export_corpus, load_corpus
from tunesmith.corpora.cache import corpus_cache_path, pack, read_cache, unpack, write_cache
from tunesmith.corpora.music21_convert import merge_ties, stream_to_score
from tunesmith.corpora.music21_corpora import (
    Unit,
    abc_numbers,
    convert_files,
    corpus_files,
    music21_corpus_dir,
    parse_unit,
    plan_units,
)

TPQ = 480
# O'Neill's no. 1, "The Enchanted Valley": music21's own MIDI writer fails on it (as on many tunes of
# this book) with "the object <TimeSignature 2/4> ... is already found in this Stream"; ours must not.
WRITER_FAILS = ("oneills1850/0001-0050.abc", 1)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Every test gets an empty user cache, so nothing leaks between tests or into the real one."""
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))


def _parse(relative: str, number: int | None = None):
    from music21 import converter

    path = music21_corpus_dir() / relative
    return converter.parse(path, forceSource=True, **({"number": number} if number else {}))


def _music21_rows(part, strip_ties: bool = True) -> list[tuple[int, int, int]]:
    """(pitch, start tick, duration ticks) as music21 sees them (ties stripped by music21), no graces."""
    flat = (part.stripTies() if strip_ties else part).flatten()
    rows = []
    for element in flat.notes:
        if element.duration.quarterLength == 0:
            continue
        start = round(float(flat.elementOffset(element)) * TPQ)
        end = round(float(flat.elementOffset(element) + element.duration.quarterLength) * TPQ)
        rows += [(int(round(p.ps)), start, end - start) for p in element.pitches]
    return sorted(rows)


def _track_rows(track) -> list[tuple[int, int, int]]:
    a = track.notes.numpy()
    return sorted(zip(a["pitch"].tolist(), a["time"].tolist(), a["duration"].tolist(), strict=True))


def _sounding(rows) -> dict[int, list[tuple[int, int]]]:
    """Per pitch, the union of the tick intervals where it sounds: the same however ties are merged."""
    spans: dict[int, list[list[int]]] = {}
    for pitch, start, duration in sorted(rows, key=lambda r: (r[0], r[1])):
        merged = spans.setdefault(pitch, [])
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], start + duration)
        else:
            merged.append([start, start + duration])
    return {pitch: [tuple(span) for span in merged] for pitch, merged in spans.items()}


def _check_meta(stream, score) -> None:
    """Meter changes as music21's recurse() meets them (in order, repeats dropped) and a tempo at 0."""
    meters = []
    for ts in stream.parts[0].recurse().getElementsByClass("TimeSignature"):
        if not meters or meters[-1] != (ts.numerator, ts.denominator):
            meters.append((ts.numerator, ts.denominator))
    assert [(ts.numerator, ts.denominator) for ts in score.time_signatures] == meters
    assert score.tempos[0].time == 0


# Well-formed ties only (same pitch on both sides): music21's stripTies is a fair reference there.
STRICT_CASES = [
    ("bach/bwv1.6.mxl", None), ("bach/bwv10.7.mxl", None), ("bach/bwv26.6.mxl", None),
    ("essenFolksong/altdeu10.abc", 1), ("essenFolksong/han1.abc", 12),
]


@pytest.mark.parametrize(("relative", "number"), STRICT_CASES)
def test_converter_matches_music21_notes_parts_and_meter(relative, number):
    stream = _parse(relative, number)
    score = stream_to_score(stream)
    parts = list(stream.parts) or [stream]
    assert len(score.tracks) == len(parts)
    for part, track in zip(parts, score.tracks, strict=True):
        assert _track_rows(track) == _music21_rows(part)
        assert track.name == (part.partName or "")
    _check_meta(stream, score)


# O'Neill's transcriber writes "A-d" (a tie between two pitches: a slur, really). music21 marks it as a
# tie and its stripTies then swallows the second note; ours keeps both. Compare what sounds instead.
@pytest.mark.parametrize("number", [1, 7, 22])
def test_converter_keeps_every_sounding_note_of_oneill_tunes(number):
    stream = _parse("oneills1850/0001-0050.abc", number)
    score = stream_to_score(stream)
    (part,) = stream.parts
    ours = _track_rows(score.tracks[0])
    unmerged = _music21_rows(part, strip_ties=False)
    assert _sounding(ours) == _sounding(unmerged)
    assert {(p, t) for p, t, _ in ours} <= {(p, t) for p, t, _ in unmerged}  # no invented onsets
    _check_meta(stream, score)
    if number == 7:  # every tie of this tune joins two different pitches: nothing may merge
        assert ours == unmerged
        assert len(_music21_rows(part)) < len(unmerged)  # music21's stripTies loses notes here


def test_music21_writer_fails_where_our_path_converts():
    from music21 import midi

    stream = _parse(*WRITER_FAILS)
    with pytest.raises(Exception, match="already found"):
        midi.translate.streamToMidiFile(stream)
    score = stream_to_score(stream)
    assert score.note_num() > 50
    # music21 shares one 2/4 object between bars 1 and 19 (after a 1/16 pickup bar): both are kept.
    meters = [(t.time, t.numerator, t.denominator) for t in score.time_signatures]
    assert meters == [(0, 2, 4), (32 * TPQ, 1, 16), (32 * TPQ + TPQ // 4, 2, 4)]


def test_ties_merge_into_one_note_and_broken_ties_stay_apart():
    raw = [(0, 480, 60, 80, "start"), (480, 960, 60, 80, "continue"), (960, 1440, 60, 80, "stop"),
           (0, 480, 64, 80, "start"), (720, 960, 64, 80, "stop"),  # gap: the tie is broken in the source
           (1440, 1920, 60, 80, None)]
    assert merge_ties(raw) == [(0, 1440, 60, 80), (0, 480, 64, 80), (720, 960, 64, 80), (1440, 1920, 60, 80)]


def test_shipped_bach_cache_matches_a_fresh_conversion():
    shipped = read_cache(corpora.SHIPPED_DIR / "bach.npz")
    assert shipped is not None, "the bach cache must ship with the package"
    meta, pieces = shipped
    by_id = dict(pieces)
    assert len(pieces) == 409 and meta["failed"] == []
    for stem in ("bwv1.6", "bwv26.6", "bwv438"):
        fresh, failed = parse_unit(Unit(str(music21_corpus_dir() / "bach" / f"{stem}.mxl")))
        assert failed == [] and fresh[0][0] == stem
        assert fresh[0][1] == by_id[stem]  # notes, velocities, tracks, tempo, meter and key, all equal


def test_load_corpus_is_stable_instant_for_bach_and_limited_loads_cache_nothing():
    pieces = load_corpus("bach")
    ids = [piece_id for piece_id, _ in pieces]
    assert ids == [p.stem for p in corpus_files("bach", (".mxl", ".xml"), exclude=("bwv846",))]
    assert [i for i, _ in load_corpus("bach", limit=5)] == ids[:5]
    assert all(s.ticks_per_quarter == TPQ and len(s.tracks) >= 4 for _, s in pieces)
    essen = load_corpus("essen", limit=3)
    assert [i for i, _ in essen] == ["altdeu10-X1", "altdeu10-X2", "altdeu10-X3"]
    assert essen[0][1].note_num() == 60 and len(essen[0][1].tracks) == 1
    assert not corpus_cache_path("essen").exists()


def test_oneill_overlapping_books_give_each_tune_once():
    files = corpus_files("oneills1850", (".abc",))
    numbers = [n for unit in plan_units(files, unique_numbers=True) for n in unit.numbers]
    assert len(numbers) == len(set(numbers)) == 1838
    assert sum(len(abc_numbers(f)) for f in files) == 2009  # music21's books repeat 171 tunes


def test_unknown_corpus_and_bad_limit_are_user_errors():
    with pytest.raises(UserError, match="bach, essen, oneill, palestrina"):
        load_corpus("mozart")
    with pytest.raises(UserError, match="limit"):
        load_corpus("bach", limit=-1)


@pytest.fixture
def tiny_corpus(monkeypatch) -> str:
    """A corpus of one small Essen ABC book (8 tunes), registered for the length of a test."""
    stems = tuple(p.stem for p in (music21_corpus_dir() / "essenFolksong").glob("*.abc") if p.stem != "testd")
    monkeypatch.setitem(CORPORA, "tiny", Corpus("tiny", "8 test tunes", "essenFolksong", (".abc",), stems))
    return "tiny"


def test_full_load_converts_once_then_reads_the_atomic_cache(tiny_corpus, monkeypatch):
    pieces = load_corpus(tiny_corpus)
    assert [i for i, _ in pieces] == [f"testd-X{n}" for n in range(1, 9)]
    path = corpus_cache_path(tiny_corpus)
    assert path.is_file() and [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left

    def no_parsing(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr("tunesmith.corpora.music21_corpora.convert_files", no_parsing)
    again = load_corpus(tiny_corpus)
    assert [i for i, _ in again] == [i for i, _ in pieces]
    assert all(a == b for (_, a), (_, b) in zip(pieces, again, strict=True))
    assert corpora.corpus_failures(tiny_corpus) == []


def test_cache_round_trip_keeps_everything_and_ignores_stale_versions(tmp_path):
    pieces = load_corpus("bach", limit=4)
    arrays = pack("bach", pieces, [("bad-piece", "ValueError: broken")], {"music21": "x"})
    meta, back = unpack(arrays)
    assert meta["failed"] == [["bad-piece", "ValueError: broken"]]
    assert [i for i, _ in back] == [i for i, _ in pieces]
    assert all(a == b for (_, a), (_, b) in zip(pieces, back, strict=True))
    path = tmp_path / "c.npz"
    write_cache(path, arrays)
    assert read_cache(path) is not None
    stale = dict(arrays, **{"meta.json": np.frombuffer(b'{"format": 0}', np.uint8)})
    write_cache(path, stale)
    assert read_cache(path) is None
    path.write_bytes(b"not a zip")
    assert read_cache(path) is None


def test_parallel_conversion_equals_serial():
    files = corpus_files("bach", (".mxl",))[:10]
    serial, _ = convert_files(files, workers=1)
    parallel, failed = convert_files(files, workers=2)
    assert failed == []
    assert [i for i, _ in parallel] == [i for i, _ in serial]
    assert all(a == b for (_, a), (_, b) in zip(serial, parallel, strict=True))


def test_a_bad_abc_tune_is_reported_not_fatal(tmp_path):
    book = tmp_path / "book.abc"
    book.write_text("X:1\nT:ok\nM:4/4\nL:1/4\nK:C\nCDEF|G4|\n\nX:2\nT:missing\nK:C\nCDEF|\n")
    pieces, failed = parse_unit(Unit(str(book), ("1", "2", "3")))
    assert [i for i, _ in pieces] == ["book-X1", "book-X2"]
    assert [i for i, _ in failed] == ["book-X3"]


def _tunesmith(*args: str, env_cache: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("tunesmith")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "tunesmith.cli"]
    env = dict(os.environ, TUNESMITH_CACHE=str(env_cache))
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env, timeout=120)


def test_cli_corpus_list_and_unknown_name(tmp_path):
    listed = _tunesmith("corpus", "list", env_cache=tmp_path)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["bach", "essen", "oneill", "palestrina"]
    assert "409 chorales" in lines[0]
    bad = _tunesmith("corpus", "export", "nope", "--out", str(tmp_path / "x"), env_cache=tmp_path)
    assert bad.returncode == 2 and "unknown corpus 'nope'" in bad.stderr and "Traceback" not in bad.stderr


def test_cli_export_bach_writes_midi_that_reads_back_with_the_same_notes(tmp_path):
    out = tmp_path / "bach-midi"
    done = _tunesmith("corpus", "export", "bach", "--out", str(out), env_cache=tmp_path)
    assert done.returncode == 0, done.stderr
    pieces = dict(load_corpus("bach"))
    files = sorted(out.iterdir())
    assert len(files) == len(pieces) == 409
    assert not [f for f in files if f.suffix != ".mid"]  # no temp files left behind
    for file in files[:: len(files) // 40]:
        back = Score.from_file(str(file), format="midi")
        original = pieces[file.stem]
        assert [_track_rows(t) for t in back.tracks] == [_track_rows(t) for t in original.tracks]
        assert [t.program for t in back.tracks] == [t.program for t in original.tracks]
        assert back.tempos[0].mspq == original.tempos[0].mspq
        assert [(t.time, t.numerator, t.denominator) for t in back.time_signatures] == [
            (t.time, t.numerator, t.denominator) for t in original.time_signatures]


def test_export_refuses_a_file_as_folder(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        export_corpus("bach", target, limit=1)
