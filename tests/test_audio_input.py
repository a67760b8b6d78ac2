"""Guarded audio input: real recordings, every format we claim, resampling, and broken files."""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tunesmith.core.errors import SkipFile
from tunesmith.io.audio_input import AUDIO_SUFFIXES, chunks, is_audio_name, read_audio, read_audio_bytes

AUDIO = Path(__file__).parent / "fixtures" / "audio"
REAL = sorted(AUDIO.glob("*.ogg"))
SHARED = Path("/work/shared/data/audio")  # the full recordings, where this machine has them


def tone(seconds: float, rate: int, hz: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def wav_bytes(samples: np.ndarray, rate: int, **kw) -> bytes:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"tunesmith-test-{os.getpid()}.wav"
    sf.write(path, samples, rate, **kw)
    data = path.read_bytes()
    path.unlink()
    return data


def skip_reason(path: Path, **kw) -> str:
    with pytest.raises(SkipFile) as caught:
        read_audio(path, 12000, **kw)
    return str(caught.value)


# ----- real recordings


def test_real_recordings_read_at_any_rate_and_layout():
    assert len(REAL) == 2
    for path in REAL:
        mono = read_audio(path, 12000, 1)
        stereo = read_audio(path, 16000, 2)
        assert mono.dtype == np.float32 and mono.shape == (1, 72000)  # 6.0 s
        assert stereo.shape == (2, 96000) and np.array_equal(stereo[0], stereo[1])  # mono file duplicated
        assert 0.1 < np.abs(mono).max() <= 1.0 and 0.01 < np.sqrt((mono ** 2).mean()) < 0.5


@pytest.mark.skipif(not SHARED.is_dir(), reason="the full recordings are not on this machine")
def test_full_recordings_have_the_lengths_their_sources_give():
    lengths = {"Hungarian": 45.8, "Fishin": 133.0, "Sugar_Plum": 119.9, "Vibe_Ace": 61.5}
    for path in sorted(SHARED.glob("*.ogg")):
        seconds = next(s for key, s in lengths.items() if key in path.name)
        samples = read_audio(path, 12000, 2)
        assert abs(samples.shape[1] / 12000 - seconds) < 0.1, path.name


def test_resampling_keeps_pitch_and_level(tmp_path):
    path = tmp_path / "tone.wav"
    sf.write(path, tone(2.0, 44100, 1000.0), 44100, subtype="FLOAT")
    samples = read_audio(path, 12000)[0]
    assert samples.shape == (24000,)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    assert abs(np.argmax(spectrum) * 12000 / len(samples) - 1000.0) < 1.0
    assert abs(np.abs(samples[1000:-1000]).max() - 0.5) < 0.005


@pytest.mark.parametrize("suffix,fmt,subtype", [
    (".wav", "WAV", "PCM_16"), (".flac", "FLAC", "PCM_16"), (".ogg", "OGG", "VORBIS"),
    (".mp3", "MP3", "MPEG_LAYER_III"), (".AIFF", "AIFF", "PCM_16"), (".WAV", "WAV", "FLOAT"),
])
def test_every_format_reads(tmp_path, suffix, fmt, subtype):
    stereo = np.stack([tone(1.5, 22050, 440.0), tone(1.5, 22050, 660.0, 0.25)], axis=1)
    path = tmp_path / f"x{suffix}"
    sf.write(path, stereo, 22050, format=fmt, subtype=subtype)
    assert is_audio_name(path.name)
    both = read_audio(path, 12000, 2)
    mono = read_audio(path, 12000, 1)
    assert both.shape[0] == 2 and abs(both.shape[1] - 18000) < 1200  # MP3 pads a little
    assert np.allclose(mono[0], both.mean(axis=0), atol=1e-5)  # mono is the mean of the channels
    assert 0.4 < np.abs(both[0]).max() <= 1.0 and 0.2 < np.abs(both[1]).max() < 0.3


def test_content_decides_the_format_not_the_suffix(tmp_path):
    path = tmp_path / "really_flac.wav"
    sf.write(path, tone(1.0, 8000), 8000, format="FLAC")
    assert read_audio(path, 8000).shape == (1, 8000)


def test_bytes_read_as_the_file_does():
    data = REAL[0].read_bytes()
    assert np.array_equal(read_audio_bytes(data, 12000, 1), read_audio(REAL[0], 12000, 1))


# ----- broken files: one reason each, nothing decoded past the caps


def test_broken_files_are_skipped_with_their_reason(tmp_path):
    good = wav_bytes(tone(2.0, 8000), 8000)
    cases = {
        "empty.wav": b"",
        "text.wav": b"this is a text file, not audio\n" * 20,
        "half.wav": good[: len(good) // 2],
        "midi.mp3": b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    assert skip_reason(tmp_path / "empty.wav").startswith("empty")
    assert skip_reason(tmp_path / "text.wav").startswith("unreadable")
    assert skip_reason(tmp_path / "half.wav").startswith("truncated")
    assert skip_reason(tmp_path / "midi.mp3").split(":")[0] in ("unreadable", "empty", "corrupt")
    (tmp_path / "audio.txt").write_bytes(good)
    assert skip_reason(tmp_path / "audio.txt").startswith("not audio")
    (tmp_path / "folder.wav").mkdir()
    assert skip_reason(tmp_path / "folder.wav").startswith("not a regular file")
    assert skip_reason(tmp_path / "missing.wav").startswith("cannot open")


def test_truncated_compressed_files_are_skipped(tmp_path):
    ogg = REAL[0].read_bytes()
    (tmp_path / "cut.ogg").write_bytes(ogg[: len(ogg) // 2])
    assert skip_reason(tmp_path / "cut.ogg").startswith("truncated")
    sf.write(tmp_path / "whole.mp3", tone(4.0, 22050), 22050)
    mp3 = (tmp_path / "whole.mp3").read_bytes()
    (tmp_path / "cut.mp3").write_bytes(mp3[: len(mp3) // 2])
    assert skip_reason(tmp_path / "cut.mp3").startswith("truncated")


def test_header_claims(tmp_path):
    data = bytearray(wav_bytes(tone(2.0, 8000), 8000))
    at = data.find(b"data") + 4
    data[at: at + 4] = struct.pack("<I", 0xFFFFFFF0)  # 4 GiB claimed, 32 kB there
    (tmp_path / "huge.wav").write_bytes(bytes(data))
    assert skip_reason(tmp_path / "huge.wav").startswith("truncated")
    data[at: at + 4] = struct.pack("<I", 32002)  # 2 bytes more than there are: a writer's slip, read
    (tmp_path / "slip.wav").write_bytes(bytes(data))
    assert read_audio(tmp_path / "slip.wav", 8000).shape == (1, 16000)
    data[at: at + 4] = struct.pack("<I", 0xFFFFFFFF)  # what streaming writers put when they cannot know
    (tmp_path / "stream.wav").write_bytes(bytes(data))
    assert read_audio(tmp_path / "stream.wav", 8000).shape == (1, 16000)
    # A FLAC whose STREAMINFO claims 2^36 - 1 samples (36 days): refused before decoding anything.
    sf.write(tmp_path / "long.flac", tone(1.0, 8000), 8000, format="FLAC")
    flac = bytearray((tmp_path / "long.flac").read_bytes())
    flac[21] |= 0x0F  # STREAMINFO: sample-count bits 35-32 are the low nibble of byte 21...
    flac[22:26] = b"\xff\xff\xff\xff"  # ...and bytes 22-25 hold bits 31-0
    (tmp_path / "long.flac").write_bytes(bytes(flac))
    started = time.perf_counter()
    assert skip_reason(tmp_path / "long.flac").startswith("too long")
    assert time.perf_counter() - started < 1.0


def test_mp3_length_guesses_are_not_taken_for_truncation(tmp_path):
    """Without a Xing/Info frame, libsndfile guesses an MP3's length from the file size, album art
    in the ID3 tag included: a whole file must not be called truncated (nor too long) for that."""
    noise = 0.05 * np.random.default_rng(0).standard_normal(10 * 22050)
    sf.write(tmp_path / "cbr.mp3", (tone(10.0, 22050) + noise).astype(np.float32), 22050,
             bitrate_mode="CONSTANT", compression_level=0.5)
    mp3 = (tmp_path / "cbr.mp3").read_bytes()
    body = mp3[mp3.find(b"\xff\xf3", 4):]  # without its first frame, the Info frame
    assert not any(tag in body[:4096] for tag in (b"Xing", b"Info", b"VBRI"))
    art = b"APIC" + struct.pack(">I", 500_000) + b"\0\0" + bytes(500_000)  # a 500-kB "cover image"
    size = len(art)
    synchsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    (tmp_path / "art.mp3").write_bytes(b"ID3\x03\x00\x00" + synchsafe + art + body)
    assert sf.info(tmp_path / "art.mp3").duration > 50  # libsndfile's guess
    assert abs(read_audio(tmp_path / "art.mp3", 12000, max_seconds=30).shape[1] / 12000 - 10.0) < 0.2


def test_caps_and_content_checks(tmp_path):
    sf.write(tmp_path / "tone.wav", tone(3.0, 8000), 8000)
    assert skip_reason(tmp_path / "tone.wav", max_seconds=2.0).startswith("too long")
    assert skip_reason(tmp_path / "tone.wav", max_bytes=1000).startswith("file too large")
    sf.write(tmp_path / "silent.wav", np.zeros(8000, np.float32), 8000)
    assert skip_reason(tmp_path / "silent.wav").startswith("silent")
    broken = tone(1.0, 8000)
    broken[100] = np.nan
    sf.write(tmp_path / "nan.wav", broken, 8000, subtype="FLOAT")
    assert skip_reason(tmp_path / "nan.wav").startswith("corrupt")
    sf.write(tmp_path / "hot.wav", 4 * tone(1.0, 8000), 8000, subtype="FLOAT")  # float WAV above full scale
    hot = read_audio(tmp_path / "hot.wav", 8000)
    assert abs(np.abs(hot).max() - 1.0) < 1e-6  # scaled down, not clipped
    with pytest.raises(ValueError):
        read_audio(tmp_path / "tone.wav", 12000, channels=3)


# ----- chunks


def test_chunks_are_equal_and_leave_out_silence():
    rate = 1000
    samples = np.zeros((2, 10 * rate), np.float32)
    samples[:, : 4 * rate] = 0.5
    samples[:, 6 * rate:] = 0.5
    parts = list(chunks(samples, rate, 2.0))
    assert len(parts) == 4 and all(p.shape == (2, 2000) for p in parts)  # 4-6 s is silent
    assert len(list(chunks(samples, rate, 2.0, hop_seconds=1.0))) == 8  # starts 0-8 s but 4 s
    assert list(chunks(samples[:, :1500], rate, 2.0)) == []  # a partial chunk is left out
    with pytest.raises(ValueError):
        list(chunks(samples, rate, 0.0))


def test_suffix_list_covers_what_libsndfile_reads():
    assert {".wav", ".flac", ".ogg", ".mp3"} <= set(AUDIO_SUFFIXES)
    assert is_audio_name(b"A.MP3") and not is_audio_name("a.mid")
