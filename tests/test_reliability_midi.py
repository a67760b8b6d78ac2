"""SMF edge cases the spec allows: a header chunk longer than 6 bytes is read (its extra bytes skipped)."""

from __future__ import annotations

import pytest

from midi_bytes import header, midi, note, rmid, simple_song, smpte_division, tempo, track
from tunesmith.core.errors import SkipFile
from tunesmith.io.midi import Limits, parse_bytes, read_midi_bytes, standard_header, write_midi


def _extended(smf: bytes, extra: bytes = b"\x01\x02\x03\x04") -> bytes:
    """`smf` with its 6-byte header chunk grown by `extra` (a future SMF version's fields)."""
    body = smf[8:14] + extra
    return b"MThd" + len(body).to_bytes(4, "big") + body + smf[14:]


def _notes(score) -> list[tuple[int, int, int]]:
    return [(n.time, n.duration, n.pitch) for t in score.tracks for n in t.notes]


@pytest.mark.parametrize("extra", [b"\x00" * 4, b"\xff" * 10, b"MTrk" + b"\x00" * 8])
def test_header_longer_than_6_bytes_reads_as_the_standard_file(extra):
    song = simple_song()
    expected = parse_bytes(song, Limits())
    score = parse_bytes(_extended(song, extra), Limits())
    assert _notes(score) == _notes(expected) and len(_notes(score)) == 5
    assert score.ticks_per_quarter == 480 and score.tempos[0].mspq == 600_000


def test_extended_header_through_the_guarded_reader_and_rmid(tmp_path):
    song = _extended(midi(track(tempo(500_000) + note(62) + note(65))))
    for data in (song, rmid(song)):
        assert [p for _, _, p in _notes(read_midi_bytes(data))] == [62, 65]
    written = write_midi(parse_bytes(song, Limits()), tmp_path / "out.mid").read_bytes()
    assert written[4:8] == b"\x00\x00\x00\x06"  # what we write is the standard form


def test_extended_header_with_smpte_division():
    song = _extended(midi(track(note(60, length=40)), division=smpte_division(25, 40)))
    score = parse_bytes(song, Limits())
    assert score.ticks_per_quarter == 1000 and _notes(score) == [(0, 40, 60)]


def test_header_length_past_the_end_is_still_refused():
    with pytest.raises(SkipFile, match="bad header: header chunk length 1000"):
        parse_bytes(header(length=1000) + track(note()), Limits())


def test_standard_header_leaves_other_bytes_alone():
    song = simple_song()
    assert standard_header(song) is song
    assert standard_header(b"RIFF....") == b"RIFF...."
    assert standard_header(_extended(song)) == song
