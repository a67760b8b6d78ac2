"""Render scores and MIDI files to audio (.wav, .flac, .mp3), and read audio files.

Two engines:

1. FluidSynth (its command-line program) with a General MIDI soundfont: real instrument samples,
   drums on channel 10 and every program change kept. It writes 32-bit float WAV, so nothing clips
   inside FluidSynth whatever the gain; the result is then peak-normalised to `PEAK_DBFS`.
2. The built-in additive synthesizer (`tunesmith.io.synth`), used when FluidSynth or a soundfont is
   missing, when FluidSynth fails, or when asked for (`engine="builtin"`). Its description says so.

Renders are bounded: a score longer than `MAX_RENDER_SECONDS` (10 minutes, about 100 MB of float
samples per channel at 44.1 kHz) or with more than `MAX_RENDER_NOTES` notes (FluidSynth needs about
1 ms of CPU per note of dense music here) is rendered only up to the cap, and one WARNING log line
says so. (A 7 MB file of 960,000 notes over two hours: its first 156 s in 20 s and 300 MB.)

Every render is trimmed of trailing silence (never before the last note ends), normalised to a peak
of -1 dBFS (headroom for MP3 encoding, which overshoots the input peak slightly) and written
atomically (`tunesmith.io.atomic`: a temporary file in the target folder, size-checked, then a rename).
"""

from __future__ import annotations

import importlib.util
import io
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from symusic import Note, Score

from tunesmith.core.errors import SkipFile, UserError
from tunesmith.core.score import note_table
from tunesmith.io.atomic import write_atomic
from tunesmith.io.checks import tick_at_seconds
from tunesmith.io.synth import notes_in_seconds, synthesize

log = logging.getLogger(__name__)
MAX_RENDER_SECONDS = 600.0  # longer scores are rendered up to this point (see the module docstring)
MAX_RENDER_NOTES = 20_000  # and scores with more notes up to the start of the next one
# Output suffix -> (soundfile format, subtype). MP3 goes through libsndfile's LAME: no ffmpeg needed.
FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".mp3": ("MP3", "MPEG_LAYER_III")}
ENGINES = ("auto", "fluidsynth", "builtin")
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)  # MPEG-1, -2 and -2.5 rates
PEAK_DBFS = -1.0
SILENCE_DB = -70.0  # trailing audio this far below the peak is cut (below 16-bit noise after -1 dBFS)
# FluidSynth's default gain (0.2) leaves a solo piano near -14 dBFS. Since it writes float samples
# (no clipping), the gain only sets the level before normalisation; 1.0 keeps it near full scale.
FLUIDSYNTH_GAIN = 1.0
SOUNDFONT_ENV = "TUNESMITH_SOUNDFONT"
SOUNDFONT_DIRS = (
    "/usr/share/sounds/sf2", "/usr/share/soundfonts", "/usr/share/sounds/sf3", "/usr/local/share/soundfonts",
    "/opt/homebrew/share/soundfonts", "~/.local/share/soundfonts", "~/.fluidsynth",
)
# default-GM is Debian's choice of GM soundfont (an `update-alternatives` link): the best installed.
PREFERRED_SOUNDFONTS = ("default-GM.sf2", "FluidR3_GM.sf2", "MuseScore_General.sf2", "TimGM6mb.sf2",
                        "default-GM.sf3", "FluidR3_GM.sf3", "MuseScore_General.sf3")


def render_score(
    score: Score, path: str | os.PathLike, sample_rate: int = 44100,
    soundfont: str | os.PathLike | None = None, *, engine: str = "auto",
    max_seconds: float = MAX_RENDER_SECONDS, max_notes: int = MAX_RENDER_NOTES,
) -> str:
    """Render `score` to the audio file `path` (.wav, .flac or .mp3) and return the engine used.

    `sample_rate` is in Hz; `soundfont` is an .sf2/.sf3 file (default: `find_soundfont()`); `engine`
    is "auto" (FluidSynth when it and a soundfont are found, else the built-in synthesizer),
    "fluidsynth" (an error when unavailable) or "builtin"; only the first `max_seconds` and the
    first `max_notes` notes are rendered (a warning is logged when that cuts the score). Raises UserError for an unknown
    suffix, a missing soundfont, or a score without notes.
    """
    return _render(score, None, Path(path), sample_rate, soundfont, engine, (max_seconds, max_notes))


def render_midi_file(
    midi_path: str | os.PathLike, out_path: str | os.PathLike, *, engine: str = "auto",
    sample_rate: int = 44100, soundfont: str | os.PathLike | None = None,
    max_seconds: float = MAX_RENDER_SECONDS, max_notes: int = MAX_RENDER_NOTES,
) -> str:
    """Render the MIDI file `midi_path` to `out_path` and return the engine used (see `render_score`).

    FluidSynth plays the original file, so everything in it (pedal, pitch bends, controllers) counts.
    """
    _check_output(Path(out_path))
    score = load_midi(midi_path)
    caps = (max_seconds, max_notes)
    return _render(score, Path(midi_path), Path(out_path), sample_rate, soundfont, engine, caps)


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Samples of an audio file as float32, shape (n_samples, n_channels), in [-1, 1], and the sample
    rate in Hz. Reads what libsndfile reads: WAV, FLAC, OGG, MP3, AIFF, ..."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist.")
    try:
        samples, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as error:
        raise UserError(f"{path} is not a readable audio file: {error}") from None
    return samples, int(sample_rate)


def load_midi(path: str | os.PathLike) -> Score:
    """The score of a MIDI file a user named; UserError (one sentence) when it is missing or unusable.

    Uses the guarded reader `tunesmith.io.midi.read_midi` when the package has it, else symusic
    directly. The path is resolved first: a user may name a symbolic link the guarded reader refuses.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist." if not path.exists() else f"{path} is not a file.")
    read = _symusic_read
    if importlib.util.find_spec("tunesmith.io.midi") is not None:
        from tunesmith.io.midi import read_midi as read
    try:
        return read(path.resolve())
    except SkipFile as reason:
        raise UserError(f"{path} is not a readable MIDI file: {str(reason).rstrip('.')}.") from None


def _symusic_read(path: Path) -> Score:
    try:
        return Score.from_file(str(path), format="midi")
    except Exception as error:  # symusic raises RuntimeError and others on bad bytes: all mean "bad file"
        raise SkipFile(" ".join(str(error).split()) or type(error).__name__) from None


def find_fluidsynth() -> str | None:
    """Path of the `fluidsynth` program on PATH, or None."""
    return shutil.which("fluidsynth")


def find_soundfont() -> Path | None:
    """The General MIDI soundfont to use: $TUNESMITH_SOUNDFONT, else the first of
    `PREFERRED_SOUNDFONTS` in `SOUNDFONT_DIRS`, else any .sf2/.sf3 there (sorted); None if none."""
    chosen = os.environ.get(SOUNDFONT_ENV)
    if chosen:
        return check_soundfont(Path(chosen).expanduser(), f"{SOUNDFONT_ENV} names {chosen}, which")
    dirs = [Path(d).expanduser() for d in SOUNDFONT_DIRS]
    found = sorted(p for d in dirs for p in _list_dir(d) if p.suffix in (".sf2", ".sf3"))
    preferred = [folder / name for name in PREFERRED_SOUNDFONTS for folder in dirs]
    return next((p for p in preferred + found if is_soundfont(p)), None)


def _list_dir(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:  # missing, not a folder, or not readable: nothing to offer
        return []


def is_soundfont(path: Path) -> bool:
    """True for a readable file that starts as a SoundFont does: a RIFF chunk of form 'sfbk'.
    (Broken links, e.g. a dangling default-GM alternative, are False.)"""
    try:
        if not path.is_file():  # also keeps open() away from FIFOs
            return False
        with open(path, "rb") as handle:
            head = handle.read(12)
    except OSError:
        return False
    return head[:4] == b"RIFF" and head[8:12] == b"sfbk"


def check_soundfont(path: Path, subject: str) -> Path:
    """`path` when it is a SoundFont; else UserError "<subject> is not a SoundFont (.sf2/.sf3) file."
    Checked here because FluidSynth, given a bad soundfont, quietly plays its default one instead."""
    if not is_soundfont(path):
        raise UserError(f"{subject} is not a SoundFont (.sf2/.sf3) file.")
    return path


def normalize_peak(samples: np.ndarray, peak_dbfs: float = PEAK_DBFS) -> np.ndarray:
    """`samples` (any shape) scaled so their largest magnitude is `peak_dbfs` dB re full scale;
    silence is returned unchanged. float32."""
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak == 0.0:
        return samples.astype(np.float32)
    return (samples * (10 ** (peak_dbfs / 20) / peak)).astype(np.float32)


def trim_tail(samples: np.ndarray, sample_rate: int, min_seconds: float) -> np.ndarray:
    """`samples` (n,) or (n, channels) without trailing audio quieter than `SILENCE_DB` re the peak,
    but never shorter than `min_seconds` (so the last note always fits)."""
    level = np.abs(samples).reshape(len(samples), -1).max(axis=1)
    loud = np.flatnonzero(level > level.max(initial=0.0) * 10 ** (SILENCE_DB / 20))
    keep = max(int(loud[-1]) + 1 if len(loud) else 0, int(np.ceil(min_seconds * sample_rate)))
    return samples[: min(keep, len(samples))]


def write_audio(samples: np.ndarray, sample_rate: int, path: str | os.PathLike) -> Path:
    """Write float samples (n,) or (n, channels) in [-1, 1] to `path`, format from its suffix,
    atomically and size-checked (`atomic.write_atomic`: encoded in memory, then written; an OSError
    such as a full disk leaves `path` as it was). Returns the path."""
    path = Path(path)
    fmt, subtype = _check_output(path)
    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate, format=fmt, subtype=subtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, buffer.getvalue())
    return path


def _check_output(path: Path) -> tuple[str, str]:
    """(format, subtype) for an output path; UserError for an unknown suffix."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"cannot write {path.name}: the audio file name must end in .wav, .flac or .mp3.")
    return fmt


def _render(score: Score, midi_file: Path | None, out: Path, sample_rate: int,
            soundfont: str | os.PathLike | None, engine: str, caps: tuple[float, int]) -> str:
    """Choose the engine, render, trim, normalise and write; returns the engine's description."""
    _check_output(out)
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    if out.suffix.lower() == ".mp3" and sample_rate not in MP3_RATES:
        raise ValueError(f"MP3 needs one of the sample rates {MP3_RATES} Hz, not {sample_rate}")
    if not 8000 <= sample_rate <= 96000:  # FluidSynth's range
        raise ValueError(f"sample_rate must be 8000-96000 Hz, not {sample_rate}")
    score, midi_file, last_note_end_s = _bounded(score, midi_file, *caps)
    samples, description = None, "built-in fallback synthesizer (engine builtin asked for)"
    if engine != "builtin":
        required = engine == "fluidsynth"
        samples, description = _try_fluidsynth(score, midi_file, sample_rate, soundfont, required)
    if samples is None:
        samples = synthesize(score, sample_rate)
    samples = normalize_peak(trim_tail(samples, sample_rate, last_note_end_s))
    write_audio(samples, sample_rate, out)
    return description


def _bounded(score: Score, midi_file: Path | None, max_seconds: float,
             max_notes: int) -> tuple[Score, Path | None, float]:
    """(score, midi_file, seconds to its last note end), cut at `max_seconds` or before the note after
    the first `max_notes` (then midi_file is None: the original file is not what gets played)."""
    if not (max_seconds > 0 and max_notes >= 1):
        raise ValueError(f"the render caps must be above 0, not {max_seconds} s and {max_notes} notes")
    notes = notes_in_seconds(score)
    if len(notes["start"]) == 0:
        raise UserError(f"{midi_file or 'the score'} has no notes to render.")
    end_s = float((notes["start"] + notes["duration"]).max())
    starts = np.sort(notes["start"])
    cut_s = min(max_seconds, float(starts[max_notes]) if len(starts) > max_notes else np.inf)
    if end_s <= cut_s:
        return score, midi_file, end_s
    log.warning("%s lasts %.0f s with %d notes; rendering only its first %.0f s (render caps: %.0f s, "
                "%d notes)", midi_file or "the score", end_s, len(starts), cut_s, max_seconds, max_notes)
    return cut_at(score, tick_at_seconds(score, cut_s)), None, cut_s


def cut_at(score: Score, tick: int) -> Score:
    """`score` up to `tick`: every event from `tick` on is dropped, notes still sounding are cut there.
    Controllers, pitch bends and tempos before `tick` are kept (unlike `core.score.trim`)."""
    out = score.clip(0, tick)
    for track in out.tracks:
        a = track.notes.numpy()
        if len(a["time"]) and (a["time"] + a["duration"] > tick).any():
            duration = np.minimum(a["duration"], tick - a["time"]).astype(a["duration"].dtype)
            track.notes = Note.from_numpy(a["time"], duration, a["pitch"], a["velocity"])
    return out


def _try_fluidsynth(score: Score, midi_file: Path | None, sample_rate: int,
                    soundfont: str | os.PathLike | None, required: bool) -> tuple[np.ndarray | None, str]:
    """FluidSynth's samples (n, 2) and its description, or (None, why the fallback is used).
    With `required`, a missing FluidSynth or soundfont is a UserError instead."""
    program = find_fluidsynth()
    if soundfont is not None:
        font = check_soundfont(Path(soundfont), f"the soundfont {soundfont}")
    else:
        font = find_soundfont()
    why = "FluidSynth not found" if program is None else ""
    why = why or ("no General MIDI soundfont found" if font is None else "")
    if why and required:
        raise UserError(f"cannot render with FluidSynth: {why} (install fluidsynth and a GM soundfont).")
    if why:
        return None, f"built-in fallback synthesizer ({why})"
    try:
        samples = run_fluidsynth(program, font, score, midi_file, sample_rate)
    except RuntimeError as error:
        if required:
            raise UserError(f"FluidSynth failed: {error}") from None
        return None, f"built-in fallback synthesizer (FluidSynth failed: {error})"
    name = font.resolve().name  # Debian's default-GM.sf2 is a link: name the real soundfont
    return samples, f"FluidSynth, {name}"


def run_fluidsynth(program: str, soundfont: Path, score: Score, midi_file: Path | None,
                   sample_rate: int) -> np.ndarray:
    """Render with the FluidSynth program into a temporary float WAV; samples (n, 2) float32.

    Plays `midi_file` when given (the original bytes), else `score` written to a temporary MIDI file.
    The score must have notes.
    Raises RuntimeError with FluidSynth's last message when it fails or times out.
    """
    from tunesmith.io.midi import write_midi

    with tempfile.TemporaryDirectory(prefix="tunesmith-render-") as tmp:
        wav = Path(tmp) / "out.wav"
        if midi_file is None:
            midi_file = Path(tmp) / "in.mid"
            # Tempo or marker events after the last note would make FluidSynth render silence.
            table = note_table(score)
            write_midi(score.clip(0, int((table["start"] + table["duration"]).max()) + 1), midi_file)
        # Absolute paths: a file name starting with "-" must not read as an option.
        command = [program, "-ni", "-q", "-g", str(FLUIDSYNTH_GAIN), "-r", str(sample_rate),
                   "-o", "audio.file.format=float", "-F", str(wav),
                   str(soundfont.resolve()), str(midi_file.resolve())]
        timeout_s = 60 + score.to("second").end()  # FluidSynth renders far faster than real time
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"no result after {timeout_s:.0f} s") from None
        lines = (done.stderr + done.stdout).strip().splitlines()
        if done.returncode != 0 or not wav.is_file():
            raise RuntimeError(lines[-1] if lines else f"exit code {done.returncode}")
        samples, _ = sf.read(str(wav), dtype="float32", always_2d=True)
    if not np.any(samples):  # e.g. a soundfont without the presets the file asks for
        raise RuntimeError(lines[-1] if lines else f"silence from {soundfont.name}")
    return samples
