"""Rendering to audio: both engines on a real piece; formats, levels, pitch, tempo map, fallbacks, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from symusic import Score, Tempo

from tunesmith.core.errors import UserError
from tunesmith.core.score import make_track, new_score, trim
from tunesmith.io import audio
from tunesmith.io.audio import (
    normalize_peak,
    read_audio,
    render_midi_file,
    render_score,
    trim_tail,
)
from tunesmith.io.synth import apply_sustain_pedal, notes_in_seconds

BACH = Path(__file__).parent / "fixtures" / "realmidi" / "tonejs_midi_tests" / "bach__bach_846.mid"
TUNESMITH = Path(sys.executable).parent / "tunesmith"
HAVE_FLUIDSYNTH = audio.find_fluidsynth() is not None and audio.find_soundfont() is not None
needs_fluidsynth = pytest.mark.skipif(not HAVE_FLUIDSYNTH, reason="FluidSynth or a GM soundfont is missing")


@pytest.fixture(scope="module")
def bach_clip() -> Score:
    """The first 1.5 bars (about 4.8 s, 24 notes) of the C major prelude, with its tempo map."""
    score = Score.from_file(str(BACH), format="midi")
    return trim(score, 0, 3 * score.ticks_per_quarter * 2)


@pytest.fixture(scope="module")
def bach_clip_midi(bach_clip: Score, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("midi") / "bach_clip.mid"
    bach_clip.dump_midi(str(path))
    return path


def notes_end_s(score: Score) -> float:
    notes = notes_in_seconds(score)
    return float((notes["start"] + notes["duration"]).max())


def dbfs(x: float) -> float:
    return 20 * np.log10(max(x, 1e-12))


def check_levels_and_length(path: Path, score: Score, max_tail_s: float) -> np.ndarray:
    """The file's audio: as long as the score's notes plus at most `max_tail_s`, peak in
    [-3, 0] dBFS, RMS well above silence."""
    samples, rate = read_audio(path)
    assert rate == 44100
    end_s = notes_end_s(score)
    assert end_s - 0.01 <= len(samples) / rate <= end_s + max_tail_s
    assert -3.0 <= dbfs(np.abs(samples).max()) <= 0.0
    assert dbfs(np.sqrt(np.mean(samples**2))) > -35.0
    return samples


@needs_fluidsynth
def test_fluidsynth_renders_real_piece(bach_clip, tmp_path):
    engine = render_score(bach_clip, tmp_path / "clip.wav")
    assert engine.startswith("FluidSynth, ") and engine.endswith((".sf2", ".sf3"))
    samples = check_levels_and_length(tmp_path / "clip.wav", bach_clip, max_tail_s=3.0)
    assert samples.shape[1] == 2


def test_builtin_renders_real_piece(bach_clip, tmp_path):
    engine = render_score(bach_clip, tmp_path / "clip.wav", engine="builtin")
    assert "fallback" in engine
    samples = check_levels_and_length(tmp_path / "clip.wav", bach_clip, max_tail_s=0.5)
    assert samples.shape[1] == 1


def single_note(pitch: int = 69, seconds: float = 1.0, program: int = 0) -> Score:
    score = new_score(qpm=60.0)  # one quarter per second
    ticks = int(seconds * score.ticks_per_quarter)
    score.tracks.append(make_track([pitch], [0], [ticks], 100, program=program))
    return score


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    mono = samples.mean(axis=1)[: rate // 2]
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(len(mono)), n=8 * len(mono)))
    return float(np.fft.rfftfreq(8 * len(mono), 1 / rate)[spectrum.argmax()])


def test_builtin_a4_sounds_at_440_hz(tmp_path):
    render_score(single_note(69), tmp_path / "a4.wav", engine="builtin")
    samples, rate = read_audio(tmp_path / "a4.wav")
    assert abs(dominant_hz(samples, rate) - 440.0) < 2.0


@needs_fluidsynth
def test_fluidsynth_a4_sounds_at_440_hz(tmp_path):
    render_score(single_note(69), tmp_path / "a4.wav")
    samples, rate = read_audio(tmp_path / "a4.wav")
    assert abs(dominant_hz(samples, rate) - 440.0) < 3.0


def test_builtin_follows_the_tempo_map(tmp_path):
    """Two quarters at 60 qpm (2 s) then 120 qpm: a note on the fourth quarter starts at 3 s."""
    score = new_score(qpm=60.0)
    score.tempos.append(Tempo(2 * score.ticks_per_quarter, qpm=120.0))
    score.tracks.append(make_track([60, 72], [0, 4 * 480], [240, 240], 100))
    render_score(score, tmp_path / "tempo.wav", engine="builtin")
    samples, rate = read_audio(tmp_path / "tempo.wav")
    level = np.abs(samples[:, 0])
    onset = np.flatnonzero(level[int(2 * rate) :] > 0.05 * level.max())[0] / rate + 2
    assert onset == pytest.approx(3.0, abs=0.01)


def test_builtin_plays_drums(tmp_path):
    score = new_score(qpm=120.0)
    score.tracks.append(make_track([36, 38, 42, 49], [0, 480, 960, 1440], [60] * 4, 100, is_drum=True))
    render_score(score, tmp_path / "drums.wav", engine="builtin")
    samples, rate = read_audio(tmp_path / "drums.wav")
    for beat in range(4):  # every hit sounds where it should
        window = samples[int(beat * 0.5 * rate) : int((beat * 0.5 + 0.05) * rate)]
        assert np.abs(window).max() > 0.05


@needs_fluidsynth
def test_fluidsynth_keeps_programs_and_drums(tmp_path):
    spectra = []
    for program in (0, 73):  # piano and flute: different instruments, different spectra
        render_score(single_note(57, program=program), tmp_path / f"p{program}.wav")
        samples, _ = read_audio(tmp_path / f"p{program}.wav")
        spectrum = np.abs(np.fft.rfft(samples.mean(axis=1)[:22050]))
        spectra.append(spectrum / np.linalg.norm(spectrum))
    assert float(spectra[0] @ spectra[1]) < 0.9
    drums = new_score(qpm=120.0)
    drums.tracks.append(make_track([36, 38], [0, 480], [60, 60], 100, is_drum=True))
    render_score(drums, tmp_path / "drums.wav")
    samples, _ = read_audio(tmp_path / "drums.wav")
    assert dbfs(np.sqrt(np.mean(samples**2))) > -35.0


@pytest.mark.parametrize("suffix", [".mp3", ".flac"])
def test_compressed_formats_read_back(bach_clip, tmp_path, suffix):
    render_score(bach_clip, tmp_path / f"clip{suffix}", engine="builtin")
    assert sf.info(str(tmp_path / f"clip{suffix}")).format == suffix[1:].upper()
    check_levels_and_length(tmp_path / f"clip{suffix}", bach_clip, max_tail_s=0.6)


def test_fallback_says_so_when_fluidsynth_is_missing(bach_clip, tmp_path, monkeypatch):
    monkeypatch.setattr(audio, "find_fluidsynth", lambda: None)
    engine = render_score(bach_clip, tmp_path / "clip.wav")
    assert engine == "built-in fallback synthesizer (FluidSynth not found)"
    check_levels_and_length(tmp_path / "clip.wav", bach_clip, max_tail_s=0.5)
    with pytest.raises(UserError, match="FluidSynth not found"):
        render_score(bach_clip, tmp_path / "other.wav", engine="fluidsynth")


def test_fallback_says_so_when_no_soundfont(bach_clip, tmp_path, monkeypatch):
    monkeypatch.setattr(audio, "find_soundfont", lambda: None)
    engine = render_score(bach_clip, tmp_path / "clip.wav")
    assert engine == "built-in fallback synthesizer (no General MIDI soundfont found)"


def test_fallback_when_fluidsynth_fails(bach_clip, tmp_path, monkeypatch):
    monkeypatch.setattr(audio, "find_fluidsynth", lambda: "/bin/false")  # exits with status 1
    monkeypatch.setattr(audio, "find_soundfont", lambda: Path("any.sf2"))
    engine = render_score(bach_clip, tmp_path / "clip.wav")
    assert engine == "built-in fallback synthesizer (FluidSynth failed: exit code 1)"
    check_levels_and_length(tmp_path / "clip.wav", bach_clip, max_tail_s=0.5)


def test_soundfont_choice_and_checks(tmp_path, monkeypatch):
    font, junk = tmp_path / "mine.sf2", tmp_path / "junk.sf2"
    font.write_bytes(b"RIFF\x04\x00\x00\x00sfbk")
    junk.write_bytes(b"not a soundfont")
    monkeypatch.setenv(audio.SOUNDFONT_ENV, str(font))
    assert audio.find_soundfont() == font
    for bad in (junk, tmp_path / "missing.sf2"):
        monkeypatch.setenv(audio.SOUNDFONT_ENV, str(bad))
        with pytest.raises(UserError, match="TUNESMITH_SOUNDFONT names .* is not a SoundFont"):
            audio.find_soundfont()
    # FluidSynth would quietly play its default soundfont instead of a bad one: refuse it first.
    with pytest.raises(UserError, match="junk.sf2 is not a SoundFont"):
        render_score(single_note(), tmp_path / "x.wav", soundfont=junk)
    monkeypatch.delenv(audio.SOUNDFONT_ENV)
    monkeypatch.setattr(audio, "SOUNDFONT_DIRS", (str(tmp_path),))
    assert audio.find_soundfont() == font  # junk.sf2 sorts first but is skipped


def test_bad_inputs_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="must end in .wav, .flac or .mp3"):
        render_score(single_note(), tmp_path / "x.ogg")
    with pytest.raises(UserError, match="no notes"):
        render_score(new_score(), tmp_path / "x.wav")
    with pytest.raises(UserError, match="does not exist"):
        render_midi_file(tmp_path / "missing.mid", tmp_path / "x.wav")
    (tmp_path / "text.mid").write_text("hello, not MIDI")
    with pytest.raises(UserError, match="is not a readable MIDI file"):
        render_midi_file(tmp_path / "text.mid", tmp_path / "x.wav")
    with pytest.raises(UserError, match="is not a readable audio file"):
        read_audio(tmp_path / "text.mid")


def test_render_midi_file_writes_atomically(bach_clip_midi, tmp_path):
    out = tmp_path / "sub" / "clip.flac"
    render_midi_file(bach_clip_midi, out, engine="builtin")
    assert out.is_file() and sorted(p.name for p in out.parent.iterdir()) == ["clip.flac"]


def run_cli(*args: str, path_env: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ) if path_env is None else {**os.environ, "PATH": path_env}
    return subprocess.run([str(TUNESMITH), *args], capture_output=True, text=True, env=env, timeout=120)


def test_cli_falls_back_without_fluidsynth_on_path(bach_clip_midi, tmp_path):
    out = tmp_path / "clip.mp3"
    done = run_cli("render", str(bach_clip_midi), "--out", str(out), path_env=str(TUNESMITH.parent))
    assert done.returncode == 0, done.stderr
    assert "built-in fallback synthesizer (FluidSynth not found)" in done.stdout
    assert read_audio(out)[0].shape[0] > 44100


@pytest.mark.parametrize(
    ("make_input", "out_name", "message"),
    [
        (lambda d: d / "missing.mid", "x.wav", "does not exist"),
        (lambda d: (d / "notes.mid").write_text("not MIDI") and d / "notes.mid", "x.wav", "readable MIDI"),
        (None, "x.ogg", "must end in .wav, .flac or .mp3"),
    ],
)
def test_cli_bad_input_exit_code_2(bach_clip_midi, tmp_path, make_input, out_name, message):
    midi = bach_clip_midi if make_input is None else make_input(tmp_path)
    done = run_cli("render", str(midi), "--out", str(tmp_path / out_name))
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / out_name).exists()


def test_normalize_and_trim_helpers():
    x = np.zeros((44100, 2), np.float32)
    x[1000:2000] = 0.25
    y = normalize_peak(trim_tail(x, 44100, min_seconds=0.01))
    assert len(y) == 2000 and np.abs(y).max() == pytest.approx(10 ** (-1 / 20), rel=1e-5)
    assert len(trim_tail(x, 44100, min_seconds=0.5)) == 22050
    assert not normalize_peak(np.zeros(10)).any()


def test_sustain_pedal_holds_notes():
    controls = {"number": np.array([64, 64, 64, 64]), "value": np.array([127, 0, 100, 0]),
                "time": np.array([0.5, 2.0, 3.0, 4.0])}
    ends = apply_sustain_pedal(np.array([0.4, 1.0, 2.5, 3.5, 4.5]), controls)
    # before the pedal; held until its lift at 2.0; between pedals; held until 4.0; after it
    np.testing.assert_allclose(ends, [0.4, 2.0, 2.5, 4.0, 4.5])
