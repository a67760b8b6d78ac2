"""Guarded MIDI reading and atomic MIDI writing.

`read_midi(path)` never crashes, hangs or exhausts memory on a bad file: every failure becomes
`SkipFile("category: detail")`. The guards, in the order they run:

1. file name suffix (.mid .midi .kar .smf .rmi, any case), regular file (no FIFO or device; a
   symlink is followed by `read_midi`, never by ingest), size cap — all before a byte is read;
2. RIFF/RMID unwrapping, then a header check (MThd, format 0-1, track count, division; SMPTE
   division converted to ticks per quarter; extra header bytes skipped, as the SMF spec asks) and
   a walk over the chunk lengths — before parsing;
3. symusic parses in a worker process with a wall-clock and an address-space limit (`workers.py`);
4. checks (`checks.py`): the note count right after parsing, before any numpy array exists; then
   ticks, duration in seconds, tempos, time signatures and notes per tick on the note arrays
   (bounded by the note cap) — before the caller builds a piano roll or stores anything.

The in-process steps live here (`read_named_file`, `parse_bytes`); `workers.py` runs them isolated.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

from symusic import Score, Tempo

from tunesmith.core.constants import MIDI_SUFFIXES
from tunesmith.core.errors import SkipFile

MiB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """Caps that decide when a file is skipped. Defaults are generous for real music, tight for junk.

    max_file_bytes: size of the file on disk (the largest Lakh MIDI files are a few MB).
    max_tracks: track chunks declared in the header (real files rarely exceed 100).
    parse_seconds: wall-clock time the worker may spend on one file (beyond it, the worker is killed).
    parse_memory_bytes: address space the worker may add, over its idle size, while parsing.
    max_notes: notes in the whole score (1M notes is hours of dense piano).
    max_notes_per_tick: notes starting on one tick, all tracks together (a full 16-channel
        tutti is a few hundred; more is a stress file, not music).
    max_ticks: last tick of any event; keeps start + duration far from int32 overflow.
    max_seconds: length in seconds through the tempo map (6 hours).
    max_qpm: fastest tempo in quarters per minute (2000 qpm = 30 µs per quarter).
    """

    max_file_bytes: int = 32 * MiB
    max_tracks: int = 1024
    parse_seconds: float = 5.0
    parse_memory_bytes: int = 2048 * MiB
    max_notes: int = 1_000_000
    max_notes_per_tick: int = 1024
    max_ticks: int = 1 << 30
    max_seconds: float = 6 * 3600.0
    max_qpm: float = 2000.0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Header:
    """What the MThd chunk says. `tpq` is ticks per quarter; for SMPTE files it is the converted
    value (frames per second x ticks per frame, one quarter = one second) and `smpte_mspq` is the
    tempo (µs per quarter) that makes the conversion exact; otherwise `smpte_mspq` is None."""

    format: int
    n_tracks: int
    tpq: int
    smpte_mspq: int | None = None


# SMPTE frame rates as stored (negated) in the division's high byte -> (nominal fps, real fps).
_SMPTE_RATES = {24: (24, 24.0), 25: (25, 25.0), 29: (30, 30000 / 1001), 30: (30, 30.0)}


def is_midi_name(name: str | bytes) -> bool:
    """True when a file name ends in one of `MIDI_SUFFIXES`, in any case (b'X.MID', 'song.Kar')."""
    text = os.fsdecode(name).lower()
    return text.endswith(MIDI_SUFFIXES)


def display_name(path: str | bytes | os.PathLike) -> str:
    """A printable, JSON-safe form of any file name: undecodable bytes appear as \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def read_file_bytes(path: str | bytes | os.PathLike, limits: Limits, follow_symlinks: bool = True) -> bytes:
    """The bytes of a regular file of at most `limits.max_file_bytes`, or SkipFile.

    Opened with O_NONBLOCK (and O_NOFOLLOW unless `follow_symlinks`) so a FIFO cannot block and a
    symlink loop fails at once; the type and size checks use fstat of the opened descriptor, so a
    file swapped for a FIFO after a directory listing is still caught.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as error:
        if error.errno == errno.ELOOP:  # a symlink met with O_NOFOLLOW, or a loop of them
            kind = "symbolic link loop" if follow_symlinks else file_kind(stat.S_IFLNK)
            raise SkipFile(f"not a regular file: {kind}") from None
        raise SkipFile(f"cannot open: {error.strerror or type(error).__name__}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SkipFile(f"not a regular file: {file_kind(info.st_mode)}")
        _check_size(info.st_size, limits)
        data = _read_all(fd, info.st_size, limits.max_file_bytes + 1)
    except OSError as error:
        raise SkipFile(f"cannot read: {error.strerror or type(error).__name__}") from None
    finally:
        os.close(fd)
    _check_size(len(data), limits)  # the file may have grown since fstat
    return data


def _read_all(fd: int, expected: int, most: int) -> bytes:
    """Up to `most` bytes from `fd`, to its end. Asks for `expected` + 1 bytes first: one read of
    `most` would allocate all of it; getting them all means the file grew, so reading goes on."""
    want, chunks, size = min(expected + 1, most), [], 0
    while size < want:
        chunk = os.read(fd, want - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size == want:
            want = most
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _check_size(n_bytes: int, limits: Limits) -> None:
    if n_bytes > limits.max_file_bytes:
        raise SkipFile(f"file too large: {n_bytes / MiB:.1f} MiB (cap {limits.max_file_bytes / MiB:.0f} MiB)")


def file_kind(mode: int) -> str:
    """Human name of a file type from an `st_mode`: 'FIFO', 'directory', 'socket', ..."""
    kinds = [(stat.S_ISLNK, "symbolic link (not followed)"), (stat.S_ISFIFO, "FIFO"),
             (stat.S_ISDIR, "directory"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
             (stat.S_ISBLK, "block device")]
    return next((name for test, name in kinds if test(mode)), "special file")


def unwrap_riff(data: bytes) -> bytes:
    """The Standard MIDI File inside a RIFF 'RMID' container (its 'data' chunk); other bytes unchanged."""
    if data[:4] != b"RIFF":
        return data
    if data[8:12] != b"RMID":
        kind = data[8:12].decode("latin-1") if len(data) >= 12 else "?"
        raise SkipFile(f"not MIDI: RIFF file of type {kind!r}, not RMID")
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if chunk_id == b"data":
            if pos + 8 + size > len(data):
                raise SkipFile("truncated: RIFF data chunk runs past the end of the file")
            return data[pos + 8 : pos + 8 + size]
        pos += 8 + size + (size & 1)  # RIFF chunks are padded to an even length
    raise SkipFile("not MIDI: RIFF RMID file without a data chunk")


def check_header(data: bytes, limits: Limits) -> Header:
    """Validate the MThd chunk and every track chunk's length without parsing events.

    Raises SkipFile naming the first problem: short file, wrong magic, format, zero or too many
    tracks, zero ticks per quarter, non-standard SMPTE rate, or a chunk running past the end.
    """
    if len(data) < 14:
        raise SkipFile(f"not MIDI: {len(data)} bytes, too short for a MIDI header")
    if data[:4] != b"MThd":
        raise SkipFile(f"not MIDI: starts with {data[:4]!r} instead of b'MThd'")
    length, fmt, n_tracks, division = struct.unpack_from(">IHHH", data, 4)
    if length < 6 or 8 + length > len(data):
        raise SkipFile(f"bad header: header chunk length {length}")
    if fmt == 2:
        raise SkipFile("unsupported: MIDI format 2 (independent patterns without a shared timeline)")
    if fmt > 2:
        raise SkipFile(f"bad header: format {fmt} (MIDI formats are 0, 1 and 2)")
    if n_tracks == 0:
        raise SkipFile("bad header: declares 0 tracks")
    if n_tracks > limits.max_tracks:
        raise SkipFile(f"too many tracks: {n_tracks} (cap {limits.max_tracks})")
    header = _division(fmt, n_tracks, division)
    _check_chunks(data, 8 + length, n_tracks)
    return header


def _division(fmt: int, n_tracks: int, division: int) -> Header:
    if not division & 0x8000:
        if division == 0:
            raise SkipFile("bad header: 0 ticks per quarter note")
        return Header(fmt, n_tracks, division)
    frames = 256 - (division >> 8)  # high byte is the negated frame rate
    ticks_per_frame = division & 0xFF
    if frames not in _SMPTE_RATES or ticks_per_frame == 0:
        raise SkipFile(f"bad header: SMPTE division {frames} fps x {ticks_per_frame} ticks per frame")
    nominal, real = _SMPTE_RATES[frames]
    # One quarter = `nominal` frames; at 29.97 fps that is 1.001 s, hence the tempo below.
    return Header(fmt, n_tracks, nominal * ticks_per_frame, round(1e6 * nominal / real))


def _check_chunks(data: bytes, pos: int, n_tracks: int) -> None:
    """Walk the chunks after the header: each needs a full 8-byte head and a body inside the file.

    Non-MTrk ("alien") chunks are allowed by the standard and skipped; bytes after the last
    declared track are ignored (many real files carry trailing padding).
    """
    found = 0
    while found < n_tracks:
        if pos + 8 > len(data):
            raise SkipFile(f"truncated: file ends after {found} of {n_tracks} tracks")
        chunk_id, length = data[pos : pos + 4], struct.unpack_from(">I", data, pos + 4)[0]
        if pos + 8 + length > len(data):
            raise SkipFile(
                f"truncated: track {found + 1} declares {length} bytes but {len(data) - pos - 8} remain"
            )
        found += chunk_id == b"MTrk"
        pos += 8 + length


def prepare_bytes(data: bytes, limits: Limits) -> tuple[bytes, Header]:
    """RIFF-unwrapped bytes ready for symusic plus their checked header (SMPTE patched to ticks, a
    header chunk longer than 6 bytes cut to the standard 6)."""
    data = standard_header(unwrap_riff(data))
    header = check_header(data, limits)
    if header.smpte_mspq is not None:  # symusic refuses SMPTE: hand it the converted division
        data = data[:12] + struct.pack(">H", header.tpq) + data[14:]
    return data, header


def standard_header(data: bytes) -> bytes:
    """`data` with an MThd chunk longer than 6 bytes rewritten to the standard 6-byte form.

    The SMF spec lets later versions extend the header and tells readers to skip the extra bytes
    (honour the length field); symusic rejects any length but 6. Other bytes are returned unchanged
    (`check_header` reports what is wrong with them).
    """
    if len(data) < 14 or data[:4] != b"MThd":
        return data
    length = struct.unpack_from(">I", data, 4)[0]
    if length <= 6 or 8 + length > len(data):
        return data
    return data[:4] + struct.pack(">I", 6) + data[8:14] + data[8 + length :]


def parse_bytes(data: bytes, limits: Limits, checked: bool = True) -> Score:
    """Header check + symusic parse + score checks, in this process (no time or memory limit).

    Use `read_midi_bytes` unless you are the guarded worker. With `checked=False` only the checks
    that need no array run (`checks.check_size`): the caller must run `checks.check_piece` on the
    piece arrays it builds, and invalid key signatures are not dropped (`checks.clean_meta`).
    """
    from tunesmith.io.checks import check_score, check_size, clean_meta

    data, header = prepare_bytes(data, limits)
    try:
        score = Score.from_midi(data)
    except RuntimeError as error:
        raise SkipFile(f"parse error: {_clean_symusic(error)}") from None
    if header.smpte_mspq is not None:  # SMPTE time ignores tempo events: one fixed tempo
        score.tempos.clear()
        score.tempos.append(Tempo(0, mspq=header.smpte_mspq))
    if not checked:
        check_size(score, limits)
        return score
    check_score(score, limits)
    return clean_meta(score)


def _clean_symusic(error: Exception) -> str:
    text = " ".join(str(error).split())
    for prefix in ("MiniMidi: ", "Invaild midi file! ", "Invalid midi file! "):
        text = text.removeprefix(prefix)
    return text.removesuffix(": iostream error")[:200] or type(error).__name__


def read_named_file(path: str | bytes | os.PathLike, limits: Limits) -> bytes:
    """`read_file_bytes` for a path whose name must carry a MIDI suffix."""
    if not is_midi_name(path):
        raise SkipFile(f"not a MIDI file name: {display_name(path)!r}")
    return read_file_bytes(path, limits)


def read_midi(path: str | os.PathLike, limits: Limits = Limits()) -> Score:  # noqa: B008 (frozen)
    """A checked symusic `Score` (ticks) of the MIDI file at `path`, parsed in a guarded worker.

    Raises `SkipFile("category: detail")` for any file that cannot be used (see module docstring).
    """
    from tunesmith.io.workers import run_guarded

    return run_guarded("score", os.fsencode(os.fspath(path)), None, limits)


def read_midi_bytes(data: bytes, limits: Limits = Limits()) -> Score:  # noqa: B008 (frozen)
    """Like `read_midi` for MIDI (or RIFF RMID) bytes already in memory."""
    from tunesmith.io.workers import run_guarded

    _check_size(len(data), limits)
    return run_guarded("score", None, bytes(data), limits)


def write_midi(score: Score, path: str | os.PathLike) -> Path:
    """Write `score` as a Standard MIDI File atomically (`atomic.write_atomic`).

    Keeps ticks per quarter, tempos, time and key signatures, track names, programs and drums
    (drum tracks go to channel 10). The bytes are built in memory and their size checked on disk,
    because symusic's own `dump_midi` ignores write errors (a full disk left 0-byte files): any
    failure raises OSError and leaves `path` as it was. Returns the path written.
    """
    from tunesmith.io.atomic import write_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, score.dumps_midi())
    return path
