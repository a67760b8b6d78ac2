"""Assemble Standard MIDI File bytes chunk by chunk, so tests can build exactly the malformed file they need.

Times are ticks; `division` is the raw 16-bit header field (ticks per quarter, or SMPTE when bit 15 is set).
"""

from __future__ import annotations

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
