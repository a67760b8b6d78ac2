"""Assemble Standard MIDI File bytes chunk by chunk, so tests can build exactly the malformed file they need.

Times are ticks; `division` is the raw 16-bit header field (ticks per quarter, or SMPTE when bit 15 is set).
"""

from __future__ import annotations

import random
import struct


def vlq(value: int) -> bytes:
    """MIDI variable-length quantity: 7 bits per byte, high bit set on all but the last."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def header(fmt: int = 1, n_tracks: int = 1, division: int = 480, length: int = 6) -> bytes:
    return b"MThd" + struct.pack(">IHHH", length, fmt, n_tracks, division)


def chunk(kind: bytes, body: bytes, declared: int | None = None) -> bytes:
    """A chunk whose length field says `declared` (default: the true length of `body`)."""
    return kind + struct.pack(">I", len(body) if declared is None else declared) + body


END_OF_TRACK = b"\x00\xff\x2f\x00"


def track(events: bytes, end: bool = True, declared: int | None = None) -> bytes:
    return chunk(b"MTrk", events + (END_OF_TRACK if end else b""), declared)


def note(pitch: int = 60, delta: int = 0, length: int = 480, velocity: int = 80, channel: int = 0) -> bytes:
    """Note-on after `delta` ticks, note-off `length` ticks later."""
    on, off = bytes([0x90 | channel, pitch, velocity]), bytes([0x80 | channel, pitch, 0])
    return vlq(delta) + on + vlq(length) + off


def program(number: int, channel: int = 0, delta: int = 0) -> bytes:
    return vlq(delta) + bytes([0xC0 | channel, number])


def meta(kind: int, data: bytes, delta: int = 0, declared: int | None = None) -> bytes:
    return vlq(delta) + bytes([0xFF, kind]) + vlq(len(data) if declared is None else declared) + data


def tempo(mspq: int, delta: int = 0) -> bytes:
    return meta(0x51, mspq.to_bytes(3, "big"), delta)


def time_signature(numerator: int, denominator_power: int, delta: int = 0) -> bytes:
    return meta(0x58, bytes([numerator, denominator_power, 24, 8]), delta)


def key_signature(sharps: int, minor: int, delta: int = 0) -> bytes:
    return meta(0x59, bytes([sharps & 0xFF, minor]), delta)


def midi(*tracks: bytes, fmt: int = 1, division: int = 480) -> bytes:
    return header(fmt, len(tracks), division) + b"".join(tracks)


def smpte_division(fps: int, ticks_per_frame: int) -> int:
    """Header division field for SMPTE time: negated frame rate in the high byte."""
    return ((256 - fps) << 8) | ticks_per_frame


def rmid(smf: bytes) -> bytes:
    """`smf` wrapped in a RIFF RMID container (data chunk, padded to even length)."""
    data = b"data" + struct.pack("<I", len(smf)) + smf + (b"\0" if len(smf) % 2 else b"")
    info = b"LIST" + struct.pack("<I", 4) + b"INFO"
    body = b"RMID" + info + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def simple_song() -> bytes:
    """A valid two-track song: tempo 100 qpm, 3/4, piano melody and a drum hit."""
    conductor = track(tempo(600_000) + time_signature(3, 2))
    melody = track(program(5) + note(60) + note(64) + note(67, length=960))
    drums = track(note(36, channel=9, length=120) + note(38, delta=360, channel=9, length=120))
    return midi(conductor, melody, drums)


# Malformed files and the start of the reason they are skipped with.
MALFORMED = {
    "empty": (b"", "not MIDI: 0 bytes"),
    "random": (random.Random(0).randbytes(4096), "not MIDI: starts with"),
    "wrong magic": (b"MTHD" + simple_song()[4:], "not MIDI: starts with b'MTHD'"),
    "truncated header": (simple_song()[:11], "not MIDI: 11 bytes"),
    "short header length": (header(length=4) + track(note()), "bad header: header chunk length 4"),
    "truncated track": (simple_song()[:-9], "truncated: track 3 declares"),
    "track length past end": (header() + track(note(), declared=1000), "truncated: track 1 declares 1000"),
    "missing track": (header(n_tracks=3) + track(note()), "truncated: file ends after 1 of 3 tracks"),
    "zero tracks": (header(n_tracks=0), "bad header: declares 0 tracks"),
    "ppq 0": (midi(track(note()), division=0), "bad header: 0 ticks per quarter"),
    "smpte 20 fps": (midi(track(note()), division=smpte_division(20, 40)), "bad header: SMPTE division 20"),
    "format 2": (midi(track(note()), track(note(64)), fmt=2), "unsupported: MIDI format 2"),
    "format 7": (midi(track(note()), fmt=7), "bad header: format 7"),
    "running status, no status": (midi(track(b"\x00\x3c\x40" + note())), "parse error: Unexpected running"),
    "delta overflow": (midi(track(b"".join(note(60, 0x0FFFFFFF) for _ in range(10)))), "tick overflow"),
    "huge deltas": (midi(track(note(60, 0x0FFFFFFF) + note(62, 0x0FFFFFFF))), "too long: 155.3 hours"),
    "tempo 0": (midi(track(tempo(0) + note())), "invalid tempo: 0 microseconds per quarter at tick 0"),
    "tempo too fast": (midi(track(tempo(1, delta=5) + note())), "invalid tempo: 60000000 quarters per"),
    "time signature 4/512": (midi(track(meta(0x58, b"\x04\x09\x18\x08") + note())), "invalid time signature"),
    "sysex length past end": (midi(track(b"\x00\xf0" + vlq(100_000) + b"\x01\xf7" + note())), "parse error"),
    "meta length past end": (midi(track(meta(0x01, b"abc", declared=100_000) + note())), "parse error"),
    "endless length": (midi(track(b"\x00\xff\x01\xff\xff\xff\xff\x7f", end=False)), "parse error"),
    "data byte 168": (midi(track(b"\x00\xb0\x07\xa8" + note())), "parse error: Get control_value=168"),
    "riff not rmid": (b"RIFF\x04\x00\x00\x00WAVEfmt ", "not MIDI: RIFF file of type 'WAVE'"),
    "rmid without data": (b"RIFF\x04\x00\x00\x00RMID", "not MIDI: RIFF RMID file without a data chunk"),
}
