"""pianokeys: key-band energies of audio (the seed's values, computed cheaply), the click-free
inverse, the transcription, and real recordings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tunesmith.core.errors import UserError
from tunesmith.core.score import make_track, new_score
from tunesmith.io.audio import find_fluidsynth, find_soundfont, render_score, write_audio
from tunesmith.io.audio_input import read_audio
from tunesmith.representations import get_representation
from tunesmith.representations.pianokeys_dsp import (
    band_energies,
    frame_click_ratio,
    frame_line_contrast,
    key_frequency,
    seed_band_energies,
    seed_style_inverse,
)
from tunesmith.representations.pianokeys_transcribe import keys_to_score, match_notes

RATE = 12000
AUDIO = Path(__file__).parent / "fixtures" / "audio"


def tones(keys: list[int], seconds: float = 1.0, amplitude: float = 0.3) -> np.ndarray:
    """(1, n) sum of sines at the given 1-based piano keys."""
    t = np.arange(int(seconds * RATE)) / RATE
    return sum(amplitude * np.sin(2 * np.pi * key_frequency(k) * t + k) for k in keys)[None, :]


def peaks(values: np.ndarray) -> set[int]:
    """1-based keys that are a maximum across keys and within 20 dB of the loudest (values at 80 dB)."""
    level = values.mean(axis=-1)
    padded = np.r_[-1, level, -1]
    top = (level >= padded[:-2]) & (level >= padded[2:]) & (level > level.max() - 0.25)
    return set((np.flatnonzero(top) + 1).tolist())


def test_a4_lights_key_49_and_nothing_far_from_it():
    rep = get_representation("pianokeys", channels=1)
    keys = rep.encode_audio(tones([49], amplitude=0.5))
    assert keys.shape == (1, 88, 50) and keys.dtype == np.float32
    assert (keys[0].argmax(axis=0) == 48).all()  # row 48 is key 49 in every frame
    inner = keys[0, :, 4:-4]  # the tone starts and stops abruptly: a click at both ends lights every key
    assert abs(inner[48].mean() - (1 + 20 * np.log10(0.5) / 80)) < 0.005  # a half-scale sine: -6 dB
    far = np.abs(np.arange(1, 89) - 49) >= 3
    assert inner[far].max() == 0.0  # more than 80 dB down
    # Constant-Q masks: half a semitone wide, so even the next key is far down; their time response
    # is long in the bass (0.2 s at A0), so the tone's abrupt start and end light the low keys: the
    # middle second of a 3-s tone is clear of them.
    cqt = get_representation("pianokeys", channels=1, kind="cqt").encode_audio(tones([49], seconds=3.0))[0, :, 50:100]
    assert (cqt.argmax(axis=0) == 48).all() and cqt[np.abs(np.arange(1, 89) - 49) >= 2].max() < 0.2
    assert cqt[[47, 49]].max() < cqt[48].min() - 0.15  # the neighbours are more than 12 dB down


def test_a_chord_lights_its_three_keys():
    rep = get_representation("pianokeys", channels=1)
    assert peaks(rep.encode_audio(tones([40, 44, 47]))[0]) == {40, 44, 47}  # C4 E4 G4
    assert peaks(rep.encode_audio(tones([16, 59, 80]))[0]) == {16, 59, 80}  # C2 G5 E7


def test_band_energies_equal_the_seeds_per_key_full_fft():
    freqs, sigmas = key_frequency(np.arange(1, 89)), np.full(88, 12.5)
    rng = np.random.default_rng(0)
    signal = tones([1, 30, 49, 88], seconds=2.0)[0] + 0.01 * rng.standard_normal(2 * RATE)
    for sig in (signal, 0.2 * rng.standard_normal(3 * RATE)[: 2 * RATE + 123]):  # noise, a partial frame
        ours = band_energies(sig, RATE, 240, freqs, sigmas)
        seed = seed_band_energies(sig, RATE, 240, freqs, sigmas)
        assert ours.shape == seed.shape == (88, len(sig) // 240)
        big = seed > 1e-6 * seed.max()
        assert (np.abs(ours - seed)[big] / seed[big]).max() < 1e-4
    cqt = freqs * (2 ** (0.5 / 12) - 1)
    ours, seed = band_energies(signal, RATE, 240, freqs, cqt), seed_band_energies(signal, RATE, 240, freqs, cqt)
    big = seed > 1e-6 * seed.max()
    assert (np.abs(ours - seed)[big] / seed[big]).max() < 1e-4


def test_band_energies_match_the_seed_at_any_rate_frame_and_width():
    """Random rates, odd frame sizes, partial frames, key ranges, fixed and constant-Q widths."""
    rng = np.random.default_rng(5)
    for _ in range(12):
        rate = int(rng.choice([8000, 11025, 16000, 22050, 44100]))
        frame = int(rng.integers(50, 1200))
        n = int(rng.integers(frame, 2 * rate))
        low = int(rng.integers(1, 60))
        freqs = key_frequency(np.arange(low, int(rng.integers(low, 89)) + 1))
        freqs = freqs[freqs < rate / 2 - 200]
        if rng.random() < 0.5:
            sigmas = freqs * (2 ** (rng.uniform(0.1, 1.5) / 12) - 1)
        else:
            sigmas = np.full(len(freqs), rng.uniform(3, 40))
        x = 0.1 * rng.standard_normal(n) + np.sin(2 * np.pi * freqs[len(freqs) // 2] * np.arange(n) / rate)
        ours, seed = band_energies(x, rate, frame, freqs, sigmas), seed_band_energies(x, rate, frame, freqs, sigmas)
        big = seed > 1e-6 * seed.max()
        assert (np.abs(ours - seed)[big] / seed[big]).max() < 1e-3, (rate, frame, n)


@pytest.mark.parametrize("kind,chord,channels", [("stft", [40, 44, 47, 61, 70], 1), ("cqt", [16, 28, 40, 47, 61], 1)])
def test_round_trip_encode_decode_encode_is_close(kind, chord, channels):
    """Keys within 20 dB of the loudest come back within 2.4 dB. (The seed's fixed 12.5-Hz masks
    cannot separate keys below C4, 7-15 Hz apart: there only the constant-Q kind round-trips.)"""
    rep = get_representation("pianokeys", channels=channels, kind=kind)
    keys = rep.encode_audio(np.repeat(tones(chord, seconds=3.0, amplitude=0.15), channels, axis=0))
    audio = rep.decode_audio(keys)
    assert audio.shape == (channels, 3 * RATE) and audio.dtype == np.float32 and np.abs(audio).max() <= 1.0
    again = rep.encode_audio(audio)
    inner = (slice(None), slice(None), slice(55, 95))  # clear of the edges, where the tones start and stop
    loud = keys[inner] > keys.max() - 0.25
    assert np.abs(again[inner] - keys[inner])[loud].max() < 0.03
    assert peaks(again[0]) == set(chord)


def test_real_recordings_give_plausible_energies():
    rep = get_representation("pianokeys", channels=2)
    for path in sorted(AUDIO.glob("*.ogg")):
        keys = rep.encode_audio(read_audio(path, RATE, 2))
        assert keys.shape == (2, 88, 300)
        assert 0.6 < keys.max() < 1.0  # loud, never a full-scale sine in one key
        loudest = keys.mean(axis=(0, 2)).argmax() + 1
        assert 20 <= loudest <= 70, path.name  # the energy sits in the middle of the keyboard
        assert (keys.max(axis=(0, 1)) > 0.5).mean() > 0.8  # music in almost every frame


def test_the_inverse_has_no_frame_clicks():
    rep = get_representation("pianokeys", channels=1)
    chord = [40, 44, 47]
    keys = rep.encode_audio(tones(chord, seconds=1.0))
    ours = rep.decode_audio(keys)
    seed = seed_style_inverse(rep.amplitudes(keys)[0], rep.key_frequencies(), RATE, rep.config.frame)
    avoid = rep.key_frequencies()  # lines near a key (F4 is 0.8 Hz from 350 Hz) are the music's
    assert frame_click_ratio(ours, RATE, avoid_hz=avoid) < 1e-6
    assert frame_click_ratio(seed, RATE, avoid_hz=avoid) > 0.2  # a steady chord becomes a 50-Hz buzz
    real = rep.encode_audio(read_audio(AUDIO / "kevin_macleod_vibe_ace_excerpt.ogg", RATE, 1))
    # Music has energy everywhere: compare the lines with the spectrum around them instead.
    ours = frame_line_contrast(rep.decode_audio(real), RATE, avoid_hz=avoid)
    seed = frame_line_contrast(seed_style_inverse(rep.amplitudes(real)[0], avoid, RATE, 240), RATE, avoid_hz=avoid)
    assert ours < 1.0 and seed > 10.0


def melody():
    """A known score: a C major scale in eighths at 120 bpm, a repeated staccato note, a held chord.
    (A repeated note played legato is one note to this transcription: its level hardly moves.)"""
    score = new_score(tpq=480, qpm=120)
    pitch = [60, 62, 64, 65, 67, 69, 71, 72, 72, 60, 64, 67]
    start = [240 * i for i in range(9)] + [2400] * 3
    score.tracks.append(make_track(pitch, start, [240] * 7 + [120] * 2 + [960] * 3, 90, name="Piano"))
    return score


def test_transcription_finds_a_rendered_melody():
    rep = get_representation("pianokeys", channels=1)
    found = rep.decode(rep.encode(melody()))
    scores = match_notes(melody(), found, onset_seconds=0.03)
    assert scores["f1"] == 1.0, scores
    assert found.ticks_per_quarter == 480 and found.tempos[0].qpm == 120
    slow = keys_to_score(rep.encode(melody()), get_representation("pianokeys", channels=1, tempo_qpm=60))
    assert slow.end() == pytest.approx(found.end() / 2, abs=2)  # same seconds, half the quarters


def test_transcription_of_a_real_chorale_line():
    from tunesmith.core.score import trim
    from tunesmith.corpora import load_corpus

    _, score = load_corpus("bach", limit=1)[0]
    soprano = new_score(tpq=score.ticks_per_quarter)
    soprano.tracks.append(score.tracks[0])
    soprano = trim(soprano, 0, 8 * score.ticks_per_quarter)
    rep = get_representation("pianokeys", channels=1)
    scores = match_notes(soprano, rep.decode(rep.encode(soprano)), onset_seconds=0.05)
    assert scores["reference"] >= 6 and scores["f1"] >= 0.9, scores


@pytest.mark.skipif(find_fluidsynth() is None or find_soundfont() is None, reason="needs FluidSynth and a soundfont")
def test_transcription_of_a_four_voice_chorale_played_on_a_sampled_piano(tmp_path):
    from tunesmith.core.score import trim
    from tunesmith.corpora import load_corpus

    _, score = load_corpus("bach", limit=3)[2]
    score = trim(score, 0, 16 * score.ticks_per_quarter)
    render_score(score, tmp_path / "chorale.flac", RATE, engine="fluidsynth")
    rep = get_representation("pianokeys", channels=1)
    found = rep.decode(rep.encode_audio(read_audio(tmp_path / "chorale.flac", RATE, 1)))
    scores = match_notes(score, found, onset_seconds=0.05)
    assert scores["reference"] > 60 and scores["precision"] > 0.6 and scores["recall"] > 0.6, scores


def test_silence_and_bad_input():
    rep = get_representation("pianokeys", channels=1)
    silent = rep.encode_audio(np.zeros((1, RATE)))
    assert silent.max() == 0.0 and rep.decode(silent).note_num() == 0
    assert not rep.decode_audio(silent).any()
    stereo = get_representation("pianokeys", channels=2)
    both = stereo.encode_audio(np.concatenate([tones([49]), tones([52])]))
    assert both.shape == (2, 88, 50) and both[0].mean(axis=1).argmax() == 48 and both[1].mean(axis=1).argmax() == 51
    assert stereo.decode_audio(both).shape == (2, RATE)
    with pytest.raises(UserError):
        rep.encode_audio(np.zeros((2, RATE)))  # a mono representation
    with pytest.raises(UserError):
        rep.decode_audio(np.zeros((1, 33, 10)))
    with pytest.raises(UserError):
        get_representation("pianokeys", sample_rate=8000)  # C8 (4,186 Hz) is above its Nyquist
    with pytest.raises(UserError):
        get_representation("pianokeys", kind="mel")
    narrow = get_representation("pianokeys", sample_rate=8000, lowest_key=27, highest_key=59)  # the seed's keys
    assert narrow.encode_audio(np.zeros((2, 8000))).shape == (2, 33, 50)


def test_linear_scale_is_the_sine_amplitude():
    rep = get_representation("pianokeys", channels=1, scale="linear")
    keys = rep.encode_audio(tones([49], amplitude=0.25))
    assert abs(keys[0, 48, 5:-5].mean() - 0.25) < 0.002
    assert np.allclose(rep.values(rep.amplitudes(keys)), keys)


def test_cli_transcribe_writes_midi_and_the_keys_played_back(tmp_path):
    import subprocess
    import sys

    from tunesmith.cli_audio import transcribe
    from tunesmith.io.midi import read_midi

    rep = get_representation("pianokeys", channels=1)
    wav = tmp_path / "melody.wav"
    write_audio(rep.decode_audio(rep.encode(melody()))[0], RATE, wav)  # the scale, played by our own inverse
    tunesmith = Path(sys.executable).parent / "tunesmith"
    run = [str(tunesmith), "transcribe", str(wav), "--out", str(tmp_path / "m.mid"),
           "--resynth", str(tmp_path / "m.flac")]
    done = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert match_notes(melody(), read_midi(tmp_path / "m.mid"), onset_seconds=0.05)["f1"] == 1.0
    assert read_audio(tmp_path / "m.flac", RATE).shape[1] == read_audio(wav, RATE).shape[1]
    with pytest.raises(UserError, match="cannot open"):  # the command's own error, in this process
        transcribe(tmp_path / "none.wav", tmp_path / "x.mid", None, "stft", 120.0)
    with pytest.raises(UserError, match="must end in .mid"):
        transcribe(wav, tmp_path / "x.txt", None, "stft", 120.0)
