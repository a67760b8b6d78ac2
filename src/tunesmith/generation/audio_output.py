"""`generate` for audio families (data kind "audio"): piano-key chunks -> WAV / MP3, a key-time PNG, a MIDI
transcription, and the provenance sidecar.

Per piece `stem_NN`: `.wav` (or `.mp3` with --mp3) of the new audio, synthesised by the representation's
phase-continuous inverse; `.png` the keys over time (with the primer's last chunk left of a white line
when there is one); `.mid` the transcription of the new keys (the representation's `decode`: onset picking), so
`tunesmith evaluate` measures it like any generated MIDI; with a primer also `stem_NN_primed.wav`: the
primer's last chunk (through the same inverse) followed by the new audio.

Length: one chunk (the model's `chunk_frames`, 10 s for the shipped model) per piece; `--steps N` asks
for N frames (20 ms each), rounded up to whole chunks, each continuing the one before (a noise-only model
writes independent chunks one after another). `--bars` does not apply to audio.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from tunesmith.core.errors import SkipFile, UserError
from tunesmith.models.base import check_options
from tunesmith.models.checkpoint import LoadedModel, load_checkpoint, load_model

log = logging.getLogger(__name__)
MIDI_SUFFIXES = (".mid", ".midi", ".kar", ".rmi")


def is_audio_checkpoint(checkpoint: str | Path) -> bool:
    """Whether the checkpoint holds a family that eats audio (so `generate` writes audio, not MIDI)."""
    from tunesmith.models import MODELS

    name = load_checkpoint(checkpoint).get("model", {}).get("name")
    return getattr(MODELS.get(name), "data_kind", None) == "audio"


def read_audio_primer(path: Path, rep, frames: int) -> np.ndarray:
    """The keys (C, K, frames) of the primer's last `frames` frames; UserError for a missing, MIDI,
    unreadable or too short file."""
    from tunesmith.io.audio_input import read_audio

    path = Path(path)
    if not path.is_file():
        raise UserError(f"primer {path} does not exist")
    seconds = frames * rep.config.frame_seconds
    if path.suffix.lower() in MIDI_SUFFIXES:
        raise UserError(f"primer {path.name} is a MIDI file, but this model continues audio: give a recording "
                        f"(.wav, .flac, .ogg, .mp3) of at least {seconds:g} s")
    try:
        samples = read_audio(path, rep.config.sample_rate, rep.config.channels)
    except SkipFile as reason:
        raise UserError(f"primer {path.name} is not a readable audio file ({reason})") from None
    keys = rep.encode_audio(samples)
    if keys.shape[-1] < frames:
        raise UserError(f"primer {path.name} lasts {keys.shape[-1] * rep.config.frame_seconds:.1f} s, but this "
                        f"model continues a {seconds:g}-s chunk; give a longer recording")
    return np.asarray(keys[..., -frames:], dtype=np.float32)


def generate_keys(loaded: LoadedModel, n: int, chunks: int, context: np.ndarray | None, seed: int,
                  temperature: float | None) -> Iterator[np.ndarray]:
    """`n` pieces of keys (C, K, chunks x T), one at a time; each chunk continues the previous one when
    the model can continue (else it starts from noise)."""
    model = loaded.model
    generator = torch.Generator().manual_seed(seed)
    can_continue = model.config.mode != "noise"
    for _ in range(n):
        previous, parts = context, []
        for _ in range(chunks):
            keys = model.sample_keys(1, previous if can_continue else None, generator,
                                     1.0 if temperature is None else temperature)[0]
            parts.append(keys)
            previous = keys
        yield np.concatenate(parts, axis=-1)


def keys_png(keys: np.ndarray, path: Path, rep, title: str, context_frames: int = 0) -> Path:
    """A key-time image of keys (C, K, F) (channels averaged): time in seconds across, keys up (every C
    named), the value (dB above the floor) as brightness; a white line after `context_frames` frames of primer."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from tunesmith.io.atomic import write_atomic

    image = np.asarray(keys, dtype=np.float32).mean(0)
    lowest = rep.config.lowest_key
    seconds = image.shape[1] * rep.config.frame_seconds
    fig = Figure(figsize=(min(16.0, 4 + seconds / 3), 4), dpi=80)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(image, origin="lower", aspect="auto", cmap="magma", vmin=0, vmax=1, interpolation="nearest",
              extent=(0, seconds, lowest - 0.5, lowest + image.shape[0] - 0.5))
    c_keys = [k for k in range(lowest, lowest + image.shape[0]) if (k + 8) % 12 == 0]  # key 40 = C4
    ax.set_yticks(c_keys, [f"C{(k + 8) // 12}" for k in c_keys])
    if context_frames:
        ax.axvline(context_frames * rep.config.frame_seconds, color="white", linewidth=1.5)
    ax.set_xlabel("seconds")
    ax.set_ylabel("piano key")
    ax.set_title(title)
    fig.tight_layout()
    write_atomic(path, lambda handle: fig.savefig(handle, format="png"))
    return path


def write_audio_piece(keys: np.ndarray, base: Path, rep, suffix: str, title: str,
                      context: np.ndarray | None) -> list[Path]:
    """Audio, PNG and MIDI of one piece of keys (C, K, F); see the module docstring. Returns the paths."""
    from tunesmith.io.audio import normalize_peak, write_audio
    from tunesmith.io.midi import write_midi

    def audio(k: np.ndarray, path: Path) -> Path:
        samples = normalize_peak(rep.decode_audio(k))  # (C, n) -> peak -1 dBFS
        return write_audio(samples.T, rep.config.sample_rate, path)

    written = [audio(keys, base.with_suffix(suffix))]
    if context is not None:
        primed = base.with_name(base.name + "_primed").with_suffix(suffix)
        written.append(audio(np.concatenate([context, keys], axis=-1), primed))
    shown = keys if context is None else np.concatenate([context, keys], axis=-1)
    written.append(keys_png(shown, base.with_suffix(".png"), rep, title, 0 if context is None else context.shape[-1]))
    score = rep.decode(keys)  # the representation's transcription (onset picking)
    if score.note_num() == 0:
        log.warning("%s: the transcription found no notes; the MIDI file is empty", base.name)
    write_midi(score, base.with_suffix(".mid"))
    written.append(base.with_suffix(".mid"))
    return written


def generate_audio_command(checkpoint: str, out: Path, request, stem: str = "sample") -> Iterator[Path]:
    """`tunesmith generate` for an audio checkpoint: yields each path written (generation.json is
    rewritten after every piece, like for MIDI families)."""
    from tunesmith.generation.outputs import provenance, write_sidecar
    from tunesmith.io.atomic import sweep_temp_files

    loaded = load_model(checkpoint)
    model, rep = loaded.model, loaded.representation
    check_options(model, request.options())
    frames = model.config.chunk_frames
    context = read_audio_primer(request.primer, rep, frames) if request.primer else None
    if context is None and model.config.mode == "continuation":
        raise UserError("this model continues audio only (mode continuation); give --primer AUDIO_FILE")
    if context is not None and model.config.mode == "noise":
        raise UserError("this model generates from noise only (mode noise); leave out --primer")
    torch.set_num_threads(model.cpu_threads or torch.get_num_threads())
    chunks = max(1, math.ceil(request.steps / frames)) if request.steps else 1
    out.mkdir(parents=True, exist_ok=True)
    sweep_temp_files(out)
    record, written, width = provenance(loaded, request), [], max(2, len(str(request.n)))
    suffix = f".{request.audio or 'wav'}"
    pieces = generate_keys(loaded, request.n, chunks, context, request.seed, request.sampling.temperature)
    for index, keys in enumerate(pieces, 1):
        paths = write_audio_piece(keys, out / f"{stem}_{index:0{width}d}", rep, suffix, f"{stem} {index}", context)
        written += paths
        write_sidecar(out, record, written)
        yield from paths
