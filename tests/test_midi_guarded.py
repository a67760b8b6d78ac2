"""The guarded reader against malformed files: each loads correctly or is skipped with its reason,
within 10 s and 2 GiB. Every malformed file is built here, byte by byte (see midi_bytes.py)."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from symusic import Score, Tempo, TimeSignature

from midi_bytes import (
    MALFORMED,
    key_signature,
    midi,
    note,
    rmid,
    simple_song,
    smpte_division,
    tempo,
    track,
    vlq,
)
from tunesmith.core.errors import SkipFile
from tunesmith.core.score import make_track, new_score, scores_have_same_notes
from tunesmith.io import workers
from tunesmith.io.midi import Limits, check_header, read_midi, read_midi_bytes, unwrap_riff, write_midi

SECONDS, BYTES = 10.0, 2 << 30


def outcome(path: Path, limits: Limits = Limits()) -> Score | str:  # noqa: B008
    """read_midi's Score, or its skip reason; asserts the call took < 10 s and < 2 GiB here."""
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.monotonic()
    try:
        result = read_midi(path, limits)
    except SkipFile as reason:
        result = str(reason)
        assert "\n" not in result and result
    assert time.monotonic() - started < SECONDS
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak_before < BYTES
    return result


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_file_is_skipped_with_its_reason(tmp_path, case):
    data, reason = MALFORMED[case]
    result = outcome(write(tmp_path, "bad.mid", data))
    assert isinstance(result, str) and result.startswith(reason), result


def test_valid_song_loads_with_everything_kept(tmp_path):
    score = outcome(write(tmp_path, "song.mid", simple_song()))
    assert isinstance(score, Score) and score.note_num() == 5
    assert [(t.mspq, t.time) for t in score.tempos] == [(600_000, 0)]
    assert [(ts.numerator, ts.denominator) for ts in score.time_signatures] == [(3, 4)]
    assert sorted((t.program, t.is_drum, len(t.notes)) for t in score.tracks) == [(0, True, 2), (5, False, 3)]


@pytest.mark.parametrize("name", ["a.MID", "b.midi", "c.Kar", "d.smf", "e.RMI"])
def test_every_midi_suffix_in_any_case_is_read(tmp_path, name):
    assert outcome(write(tmp_path, name, simple_song())).note_num() == 5


def test_other_suffix_is_refused(tmp_path):
    assert outcome(write(tmp_path, "song.txt", simple_song())).startswith("not a MIDI file name")


def test_rmid_container_is_unwrapped(tmp_path):
    wrapped = rmid(midi(track(note(60) + note(61, length=7))))  # odd length: padded data chunk
    assert unwrap_riff(wrapped) == midi(track(note(60) + note(61, length=7)))
    score = outcome(write(tmp_path, "song.rmi", wrapped))
    assert [n.pitch for n in score.tracks[0].notes] == [60, 61]


def test_smpte_division_becomes_ticks_per_quarter_with_one_second_quarters(tmp_path):
    data = midi(track(tempo(250_000) + note(60, delta=1000, length=500)), division=smpte_division(25, 40))
    score = outcome(write(tmp_path, "smpte.mid", data))
    assert score.ticks_per_quarter == 25 * 40  # ticks per second = per quarter at 60 qpm
    assert [t.mspq for t in score.tempos] == [1_000_000]  # the file's tempo event means nothing in SMPTE
    assert (score.tracks[0].notes[0].time, score.tracks[0].notes[0].duration) == (1000, 500)


def test_drop_frame_smpte_keeps_real_time():
    info = check_header(midi(track(note()), division=smpte_division(29, 80)), Limits())
    assert info.tpq == 30 * 80 and info.smpte_mspq == 1_001_000  # 30 nominal frames last 1.001 s


def test_invalid_key_signature_is_dropped_and_notes_load(tmp_path):
    data = midi(track(key_signature(20, 5) + key_signature(-3, 1) + note(60) + note(62)))
    score = outcome(write(tmp_path, "key.mid", data))
    assert [n.pitch for n in score.tracks[0].notes] == [60, 62]
    assert [(k.key, k.tonality) for k in score.key_signatures] == [(-3, 1)]


def test_no_end_of_track_and_trailing_garbage_still_load(tmp_path):
    data = midi(track(note(60), end=False)) + b"\x00" * 7
    assert outcome(write(tmp_path, "tail.mid", data)).note_num() == 1


def test_fifo_named_mid_does_not_hang(tmp_path):
    fifo = tmp_path / "pipe.mid"
    os.mkfifo(fifo)
    assert outcome(fifo) == "not a regular file: FIFO"


def test_symlink_loop_named_mid_fails_at_once_and_a_plain_link_is_followed(tmp_path):
    loop = tmp_path / "loop.mid"
    loop.symlink_to(loop)
    assert outcome(loop) == "not a regular file: symbolic link loop"
    (tmp_path / "link.mid").symlink_to(write(tmp_path, "song.mid", simple_song()))
    assert outcome(tmp_path / "link.mid").note_num() == 5
    (tmp_path / "fifo-link.mid").symlink_to(tmp_path / "pipe")
    os.mkfifo(tmp_path / "pipe")
    assert outcome(tmp_path / "fifo-link.mid") == "not a regular file: FIFO"


def test_missing_file_is_skipped(tmp_path):
    assert outcome(tmp_path / "absent.mid") == "cannot open: No such file or directory"


def test_non_utf8_file_name_is_read(tmp_path):
    name = os.fsencode(tmp_path) + b"/caf\xe9-\xff.mid"
    with open(name, "wb") as handle:
        handle.write(simple_song())
    assert outcome(Path(os.fsdecode(name))).note_num() == 5


# --- big files: built once per session; the 50 MB ones are marked slow (about a second each) ---------


@pytest.fixture(scope="session")
def big(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("big")
    chord = b"".join(vlq(0) + bytes([0x90 | i % 16, i % 128, 80]) for i in range(100_000))
    release = b"".join(vlq(480 if i == 0 else 0) + bytes([0x80 | i % 16, i % 128, 0]) for i in range(100_000))
    files = {
        "tracks_10k": midi(*[track(note(40 + i % 40, delta=i)) for i in range(10_000)]),
        "track_50mb": midi(track(note() * (50_000_000 // len(note())))),  # 5,555,555 notes
        "chord_100k": midi(track(chord + release)),
        "bends_1m": midi(track(note(60, length=1_000_000) + b"\x01\xe0\x00\x40" * 1_000_000)),
    }
    paths = {}
    for name, data in files.items():
        paths[name] = folder / f"{name}.mid"
        paths[name].write_bytes(data)
    return paths


@pytest.mark.slow
def test_ten_thousand_tracks_over_the_cap_are_skipped_and_load_under_a_higher_cap(big):
    assert outcome(big["tracks_10k"]) == "too many tracks: 10000 (cap 1024)"
    score = outcome(big["tracks_10k"], Limits(max_tracks=10_000))
    assert score.note_num() == 10_000


@pytest.mark.slow
def test_fifty_megabyte_track_is_refused_before_reading_and_by_note_count(big):
    assert outcome(big["track_50mb"]).startswith("file too large: 47.7 MiB (cap 32 MiB)")
    roomy = Limits(max_file_bytes=64 << 20)
    assert outcome(big["track_50mb"], roomy) == "too many notes: 5555555 (cap 1000000)"


def test_hundred_thousand_notes_on_one_tick_are_skipped(big):
    assert outcome(big["chord_100k"]) == "too many simultaneous notes: 100000 start on tick 0 (cap 1024)"


def test_a_million_pitch_bends_load(big):
    score = outcome(big["bends_1m"])
    assert score.note_num() == 1
    assert sum(len(t.pitch_bends) for t in score.tracks) == 1_000_000


@pytest.mark.slow
def test_parse_time_limit_kills_a_slow_parse(big):
    hasty = Limits(max_file_bytes=64 << 20, parse_seconds=0.05)
    assert outcome(big["track_50mb"], hasty) == "parse timed out after 0.05 s"
    assert outcome(big["chord_100k"], hasty).startswith("too many simultaneous")  # a fresh worker serves


@pytest.mark.slow
def test_parse_memory_limit_stops_a_hungry_parse(big):
    frugal = Limits(max_file_bytes=64 << 20, parse_memory_bytes=96 << 20)
    reason = outcome(big["track_50mb"], frugal)
    assert reason.startswith(("out of memory", "parser crashed", "parse error: MemoryError")), reason


def test_worker_address_space_is_capped():
    read_midi_bytes(simple_song())
    pool = workers.borrow_pool(1, Limits())
    pid = pool._workers[0].process.pid
    workers.return_pool(pool)
    limits = Path(f"/proc/{pid}/limits").read_text()
    soft = next(line.split()[3] for line in limits.splitlines() if line.startswith("Max address space"))
    size = int(Path(f"/proc/{pid}/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    assert soft != "unlimited" and int(soft) <= size + Limits().parse_memory_bytes


@pytest.mark.slow
def test_crashed_worker_answers_its_task_and_the_queue_goes_on(big):
    roomy = Limits(max_file_bytes=64 << 20)
    with workers.ParserPool(1, roomy) as pool:
        pool.submit("victim", "score", path=os.fsencode(big["track_50mb"]))
        while not pool._workers[0].inflight:
            pool.poll(0.05)
        pool.submit("next", "score", data=simple_song())  # queued behind, in a batch of its own
        pool.poll(0)
        pool._workers[0].process.kill()
        results = {}
        while pool.busy:
            results.update((key, (ok, payload)) for key, ok, payload in pool.poll(None))
    assert results["victim"] == (False, "parser crashed: killed by SIGKILL")
    assert results["next"][0] and results["next"][1].note_num() == 5


@pytest.mark.slow
def test_a_failed_batch_is_retried_file_by_file(big, tmp_path):
    small = write(tmp_path, "small.mid", simple_song())
    hasty = Limits(max_file_bytes=64 << 20, parse_seconds=0.25)
    with workers.ParserPool(1, hasty) as pool:
        for key, path in (("a", small), ("slow", big["track_50mb"]), ("b", small)):
            pool.submit(key, "score", path=os.fsencode(path))  # three small messages: one batch
        results = {}
        while pool.busy:
            results.update((key, (ok, payload)) for key, ok, payload in pool.poll(None))
    ok, reason = results["slow"]  # which guard stops the 50 MB track first depends on the machine's speed
    assert not ok and (reason == "parse timed out after 0.25 s" or "cap" in reason), reason
    assert results["a"][0] and results["b"][0] and results["a"][1].note_num() == 5


# --- properties -----------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_header_check_never_fails_except_with_skipfile(data):
    for blob in (data, b"MThd" + data, b"RIFF" + data):
        try:
            check_header(unwrap_riff(blob), Limits())
        except SkipFile as reason:
            assert str(reason)


SONG = simple_song()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(SONG) - 1), st.integers(0, 255)), min_size=1, max_size=8),
       st.integers(0, len(SONG)), st.sampled_from(["flip", "cut", "insert"]))
def test_mutated_midi_gives_a_score_or_a_skip_never_a_crash(edits, cut, mode):
    data = bytearray(SONG)
    if mode == "cut":
        data = data[:cut]
    for position, value in edits:
        if mode == "insert":
            data.insert(min(position, len(data)), value)
        elif position < len(data):
            data[position] = value
    try:
        score = read_midi_bytes(bytes(data))
    except SkipFile as reason:
        assert str(reason) and "\n" not in str(reason)
    else:
        assert isinstance(score, Score)
        for track_ in score.tracks:
            arrays = track_.notes.numpy()
            assert np.all(arrays["duration"] >= 0) and np.all(arrays["time"] >= 0)


# --- writing --------------------------------------------------------------------------------------


def test_write_midi_round_trips_tempo_meter_programs_and_drums(tmp_path):
    score = new_score(tpq=384, qpm=90, time_signature=(6, 8))
    score.tempos.append(Tempo(1536, qpm=140.0))
    score.time_signatures.append(TimeSignature(2304, 3, 4))
    score.tracks.append(make_track([60, 64, 67], [0, 192, 384], [192, 192, 768], program=40, name="violin"))
    score.tracks.append(make_track([33, 35], [0, 768], [384, 384], 100, program=33, name="bass"))
    score.tracks.append(make_track([36, 42], [0, 96], [48, 48], is_drum=True, name="kit"))
    out = write_midi(score, tmp_path / "sub" / "out.mid")
    back = read_midi(out)
    fields = ("pitch", "start", "duration", "velocity", "program", "is_drum")
    assert scores_have_same_notes(score, back, fields)
    assert [(t.time, t.mspq) for t in back.tempos] == [(t.time, t.mspq) for t in score.tempos]
    assert [(s.time, s.numerator, s.denominator) for s in back.time_signatures] == [(0, 6, 8), (2304, 3, 4)]
    assert sorted((t.name, t.program, t.is_drum) for t in back.tracks) == [
        ("bass", 33, False), ("kit", 0, True), ("violin", 40, False)]
    assert os.listdir(out.parent) == ["out.mid"]  # no temp file left behind


def test_write_midi_replaces_atomically_and_cleans_up_on_failure(tmp_path):
    target = tmp_path / "song.mid"
    target.write_bytes(b"old")
    write_midi(new_score(), target)
    assert target.read_bytes()[:4] == b"MThd"
    (tmp_path / "folder.mid").mkdir()
    with pytest.raises(OSError):
        write_midi(new_score(), tmp_path / "folder.mid")
    assert sorted(os.listdir(tmp_path)) == ["folder.mid", "song.mid"]
