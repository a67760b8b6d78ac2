"""Guarded audio input: recordings (wav, flac, ogg, mp3, ...) -> float32 samples at a chosen rate.

`read_audio(path, sample_rate, channels)` returns an array of shape (channels, n_samples), float32 in
[-1, 1], resampled with soxr (a real band-limited resampler, not linear interpolation). Decoding goes
through libsndfile (soundfile), which identifies the format from the bytes, not the name; the name
must still have one of `AUDIO_SUFFIXES` (any case), so a text file or a MIDI file is never fed to a
decoder by accident.

Guards, in order, each a `SkipFile("category: detail")` whose category (before the colon) groups the
ingest report: the suffix ("not audio"), the file type and size ("not a regular file", "empty", "file
too large"), the header ("unreadable": libsndfile refuses it; "bad header": an impossible rate or
channel count; "too long": the header claims more than `max_seconds`), then decoding block by block
("corrupt": a decoder error or non-finite samples; "truncated": far fewer frames than the header
claims, which for MP3 counts only with a Xing/Info/VBRI frame, the others' count being libsndfile's
guess from the file size; "too long" again if the header under-claimed) and the content ("silent": peak below
`SILENT_DBFS`). Nothing is decoded before the caps are checked, and decoding stops at the cap, so a
file whose header claims days of audio costs nothing. Memory is bounded by the output: each block is
mixed to the target channel count and resampled in a stream as it is read.

Known limit (libsndfile's): a variable-bitrate MP3 without a Xing or VBRI frame (rare: LAME, iTunes
and Fraunhofer encoders write one) is read only as far as libsndfile's length guess from its first
frame's bitrate.

`chunks(samples, sample_rate, seconds, hop_seconds)` cuts (channels, n) samples into equal chunks,
leaving out silent ones (the seed's 10-s chunks, without the silence it trained on).
"""

from __future__ import annotations

import io
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from tunesmith.core.errors import SkipFile

# Names read as audio (any case). libsndfile decodes all of these (MP3 since libsndfile 1.1).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff")
MAX_SECONDS = 900.0  # default duration cap: 15 minutes (41 MB of float32 per channel at 12 kHz)
MAX_BYTES = 512 << 20  # default file size cap: 512 MiB (an hour of 16-bit stereo WAV at 44.1 kHz)
MIN_RATE, MAX_RATE = 1000, 384_000  # Hz: sample rates a header may claim
MAX_CHANNELS = 64
SILENT_DBFS = -60.0  # a file (or a chunk) whose peak stays below this is silent
TRUNCATED_FRACTION = 0.97  # fewer decoded frames than this share of the header's count: truncated
BLOCK_FRAMES = 1 << 16  # frames decoded per step (bounded memory whatever the file)


def is_audio_name(name: str | bytes | os.PathLike) -> bool:
    """True when a file name ends in one of `AUDIO_SUFFIXES`, in any case (b'X.WAV', 'a.Mp3')."""
    return os.fsdecode(name).lower().endswith(AUDIO_SUFFIXES)


def read_audio(path: str | os.PathLike, sample_rate: int, channels: int = 1,
               max_seconds: float = MAX_SECONDS, max_bytes: int = MAX_BYTES) -> np.ndarray:
    """Samples of the audio file `path` as float32 (channels, n_samples) in [-1, 1] at `sample_rate` Hz.

    channels: 1 (mono: the mean of the file's channels) or 2 (stereo: a mono file is duplicated, a
    file with more channels keeps its first two, front left and right). Files longer than
    `max_seconds` or larger than `max_bytes` are skipped, as are unreadable, corrupt, truncated, empty
    and silent files: each raises SkipFile("category: detail") (see the module docstring).
    A bad `sample_rate` or `channels` is a ValueError (a caller's bug, not a bad file).
    """
    check_target(sample_rate, channels)
    path = Path(path)
    if not is_audio_name(path.name):
        raise SkipFile(f"not audio: the name must end in {', '.join(AUDIO_SUFFIXES)}")
    try:
        info = os.stat(path)
    except OSError as error:
        raise SkipFile(f"cannot open: {error.strerror or type(error).__name__}") from None
    if not stat.S_ISREG(info.st_mode):
        raise SkipFile("not a regular file")
    _check_size(info.st_size, max_bytes)
    try:
        with open(path, "rb") as handle:
            return _decode(handle, sample_rate, channels, max_seconds)
    except OSError as error:
        raise SkipFile(f"cannot read: {error.strerror or type(error).__name__}") from None


def read_audio_bytes(data: bytes, sample_rate: int, channels: int = 1,
                     max_seconds: float = MAX_SECONDS, max_bytes: int = MAX_BYTES) -> np.ndarray:
    """`read_audio` for the bytes of a file already in memory (ingest reads files to hash them).
    The caller checks the name; everything else is checked as `read_audio` does."""
    check_target(sample_rate, channels)
    _check_size(len(data), max_bytes)
    return _decode(io.BytesIO(data), sample_rate, channels, max_seconds)


def check_target(sample_rate: int, channels: int) -> None:
    """ValueError unless `sample_rate` (Hz) and `channels` (1 or 2) can be asked for."""
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 or 2, not {channels}")
    if not MIN_RATE <= sample_rate <= MAX_RATE:
        raise ValueError(f"sample_rate must be {MIN_RATE}-{MAX_RATE} Hz, not {sample_rate}")


def _check_size(n_bytes: int, max_bytes: int) -> None:
    if n_bytes == 0:
        raise SkipFile("empty: 0 bytes")
    if n_bytes > max_bytes:
        raise SkipFile(f"file too large: {n_bytes / 2**20:.1f} MiB (cap {max_bytes / 2**20:.0f} MiB)")


def _decode(handle, sample_rate: int, channels: int, max_seconds: float) -> np.ndarray:
    """Open, check the header, decode block by block into the target layout, check the content."""
    length_tag = _mp3_length_tag(handle)
    try:
        sound = sf.SoundFile(handle)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        raise SkipFile(f"unreadable: {_clean(error)}") from None
    with sound:
        rate, n_channels, claimed = sound.samplerate, sound.channels, sound.frames
        if not (MIN_RATE <= rate <= MAX_RATE and 1 <= n_channels <= MAX_CHANNELS):
            raise SkipFile(f"bad header: {rate} Hz, {n_channels} channels")
        if sound.format == "MP3" and not length_tag:
            claimed = 0  # libsndfile guessed it from the file size (ID3 tags, album art included)
        cap = int(max_seconds * rate)
        if 0 < claimed < 2**62 and claimed > cap:  # libsndfile says 2**63 - 1 when it cannot tell
            raise SkipFile(f"too long: {claimed / rate:.0f} s (cap {max_seconds:.0f} s)")
        _check_container(sound.extra_info)
        samples, n_read = _read_blocks(sound, rate, sample_rate, channels, cap)
    if 0 < claimed < 2**62 and n_read < TRUNCATED_FRACTION * claimed:
        raise SkipFile(f"truncated: {n_read / rate:.2f} s of the {claimed / rate:.2f} s its header claims")
    if n_read == 0:
        raise SkipFile("empty: no audio frames")
    return _finish(samples)


def _mp3_length_tag(handle) -> bool:
    """True when the file's first MPEG frame (after an ID3v2 tag) is a Xing, Info or VBRI frame,
    which states the stream's length; without one libsndfile's frame count of an MP3 is a guess
    from the file size. Reads a few KB and puts the handle back at its start."""
    head = handle.read(10)
    offset = 0
    if len(head) == 10 and head[:3] == b"ID3":
        size = (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F)
        offset = 10 + size + (10 if head[5] & 0x10 else 0)  # a footer follows when flag bit 4 is set
    handle.seek(offset)
    first = handle.read(4096)
    handle.seek(0)
    return any(tag in first for tag in (b"Xing", b"Info", b"VBRI"))


def _check_container(extra_info: str) -> None:
    """SkipFile("truncated: ...") when libsndfile's header log shows a cut file: a WAV / AIFF data
    chunk claiming 3% more than the bytes that follow it (libsndfile would quietly read what is there), or an
    Ogg stream without its end-of-stream page. Streaming writers that cannot know the length put
    0 or 0xFFFFFFFF there: those are accepted."""
    for chunk, claimed, actual in _CHUNK_CLAIM.findall(extra_info):
        if chunk in ("data", "SSND") and int(claimed) not in (0, 0xFFFFFFFF) \
                and int(actual) < TRUNCATED_FRACTION * int(claimed):  # a few bytes short is a writer's slip
            raise SkipFile(f"truncated: its {chunk} chunk claims {int(claimed):,} bytes, the file holds "
                           f"{int(actual):,}")
    if "lacks an end-of-stream bit" in extra_info:
        raise SkipFile("truncated: the Ogg stream has no end-of-stream page")


_CHUNK_CLAIM = re.compile(r"^(\w+)\s*: (\d+) \(should be (\d+)\)", re.MULTILINE)


def _read_blocks(sound: sf.SoundFile, rate: int, sample_rate: int, channels: int,
                 cap: int) -> tuple[np.ndarray, int]:
    """Decode at most `cap` frames (one more proves the file is longer) -> ((channels, n) at
    `sample_rate`, frames decoded)."""
    import soxr

    stream = soxr.ResampleStream(rate, sample_rate, channels, dtype="float32", quality="HQ") \
        if rate != sample_rate else None
    parts, n_read = [], 0
    while True:
        try:
            block = sound.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, ValueError) as error:
            raise SkipFile(f"corrupt: {_clean(error)}") from None
        n_read += len(block)
        if n_read > cap:
            raise SkipFile(f"too long: more than the cap of {cap / rate:.0f} s")
        last = len(block) < BLOCK_FRAMES
        if not np.isfinite(block).all():
            raise SkipFile("corrupt: non-finite samples")
        mixed = to_channels(block.T, channels).T  # (frames, channels): soxr's layout
        if stream is not None:
            mixed = stream.resample_chunk(np.ascontiguousarray(mixed), last=last)
        parts.append(mixed)
        if last:
            break
    samples = np.concatenate(parts) if parts else np.zeros((0, channels), np.float32)
    return np.ascontiguousarray(samples.T, dtype=np.float32), n_read


def _finish(samples: np.ndarray) -> np.ndarray:
    """Check the peak: silent files are skipped; a float file louder than full scale is scaled down
    to a peak of 1 (no clipping distortion); resampler overshoot of a full-scale file is clipped."""
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak < 10 ** (SILENT_DBFS / 20):
        raise SkipFile(f"silent: peak {20 * np.log10(max(peak, 1e-12)):.0f} dBFS")
    if peak > 1.05:
        samples = samples / np.float32(peak)
    return np.clip(samples, -1.0, 1.0, out=samples)


def to_channels(samples: np.ndarray, channels: int) -> np.ndarray:
    """(c, n) samples -> (channels, n): mono is the mean over channels; stereo duplicates mono or keeps
    the first two channels (front left and right in every standard layout)."""
    if samples.shape[0] == channels:
        return samples
    if channels == 1:
        return samples.mean(axis=0, keepdims=True, dtype=np.float32)
    if samples.shape[0] == 1:
        return np.repeat(samples, 2, axis=0)
    return samples[:2]


def chunks(samples: np.ndarray, sample_rate: int, seconds: float, hop_seconds: float | None = None,
           silent_dbfs: float = SILENT_DBFS) -> Iterator[np.ndarray]:
    """Equal chunks of `samples` (channels, n): (channels, round(seconds * sample_rate)) arrays whose
    starts are `hop_seconds` apart (default `seconds`: back to back), in order; a partial last chunk
    is left out, and so is every chunk whose peak is below `silent_dbfs` dB re full scale."""
    size = int(round(seconds * sample_rate))
    hop = int(round((hop_seconds if hop_seconds is not None else seconds) * sample_rate))
    if size < 1 or hop < 1:
        raise ValueError(f"chunk and hop must last at least one sample, not {seconds} s and {hop_seconds} s")
    floor = 10 ** (silent_dbfs / 20)
    for start in range(0, samples.shape[-1] - size + 1, hop):
        chunk = samples[..., start: start + size]
        if np.max(np.abs(chunk)) >= floor:
            yield chunk


def _clean(error: Exception) -> str:
    """libsndfile's message on one line, without the "Error opening <_io.BufferedReader ...>:" prefix."""
    text = " ".join(str(error).split())
    return text.split(": ", 1)[1] if text.startswith("Error opening") and ": " in text else text
