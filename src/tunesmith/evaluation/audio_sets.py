"""`tunesmith evaluate GENERATED --reference AUDIO_FOLDER`: generated audio against real recordings, both
measured as piano-key energies (`audio_metrics.py`), with the real-vs-real ceiling.

Both folders are read through the guarded reader (broken files skipped with their reason) and encoded by
the generating model's own `pianokeys` representation when the generated folder has a generation.json
(else mono keys 1-88 at 12 kHz), then cut into chunks of the model's length (else 500 frames = 10 s);
`*_primed.*` files (primer + continuation) are left out of the generated set, so only new audio counts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tunesmith.core.errors import SkipFile, UserError
from tunesmith.evaluation.audio_metrics import compare_key_sets, split_chunks
from tunesmith.evaluation.provenance import read_sidecar
from tunesmith.io.atomic import write_atomic

log = logging.getLogger(__name__)
DEFAULT_FRAMES = 500


def _audio_files(folder: Path) -> list[Path]:
    from tunesmith.io.audio_input import is_audio_name

    return sorted(p for p in folder.rglob("*") if p.is_file() and is_audio_name(p.name)
                  and not p.stem.endswith("_primed"))


def is_audio_reference(reference: str) -> bool:
    """True for a folder that holds audio files and no MIDI files (so `evaluate` measures audio)."""
    folder = Path(reference)
    if not folder.is_dir():
        return False
    has_midi = any(p.suffix.lower() in (".mid", ".midi") for p in folder.rglob("*"))
    return not has_midi and bool(_audio_files(folder))


def measuring_terms(generated: Path):
    """(pianokeys representation, chunk frames) of the generating model (its sidecar), else the defaults."""
    from tunesmith.representations import get_representation, representation_from_dict

    record = read_sidecar(generated)
    if record and record.get("representation", {}).get("name") == "pianokeys":
        frames = record.get("model", {}).get("config", {}).get("chunk_frames", DEFAULT_FRAMES)
        return representation_from_dict(record["representation"]), int(frames)
    return get_representation("pianokeys", channels=1), DEFAULT_FRAMES


def folder_chunks(folder: Path, rep, frames: int, limit: int | None = None) -> list[np.ndarray]:
    """Key chunks (C, K, frames) of the audio files under `folder` (at most `limit` files); UserError when
    none gives a chunk."""
    from tunesmith.io.audio_input import read_audio

    chunks, files = [], _audio_files(folder)[:limit]
    for path in files:
        try:
            keys = rep.encode_audio(read_audio(path, rep.config.sample_rate, rep.config.channels))
        except SkipFile as reason:
            log.warning("skipped %s: %s", path, reason)
            continue
        chunks += split_chunks([keys], frames)
    if len(chunks) < 2:
        seconds = frames * rep.config.frame_seconds
        raise UserError(f"{folder} gives {len(chunks)} sounding chunk(s) of {seconds:g} s from {len(files)} audio "
                        "file(s); audio evaluation needs at least 2")
    return chunks


def evaluate_audio_command(generated: Path, reference: Path, out: Path, limit: int | None,
                           say: Callable[[str], None] = print) -> dict:
    """Measure, write `out` as JSON (whatever its suffix says, with .json added when it is not) and say the
    headline."""
    rep, frames = measuring_terms(generated)
    gen, ref = folder_chunks(generated, rep, frames, limit), folder_chunks(reference, rep, frames, limit)
    result = compare_key_sets(ref, gen, rep.config.frame_seconds, rep.config.lowest_key)
    result["chunks"] = {"generated": len(gen), "reference": len(ref), "frames": frames}
    path = out if out.suffix == ".json" else out.with_suffix(out.suffix + ".json")
    write_atomic(path, (json.dumps(result, indent=2) + "\n").encode())
    ceiling = result.get("ceiling", {}).get("key_energy_overlap")
    say(f"wrote {path}: key-energy overlap {result['generated']['key_energy_overlap']:.3f}"
        + (f" (real vs real {ceiling:.3f})" if ceiling is not None else "")
        + f" over {len(gen)} generated and {len(ref)} reference chunks of {frames * rep.config.frame_seconds:g} s")
    return result
