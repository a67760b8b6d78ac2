"""Writing what `generate` made: MIDI (+ audio, plot) per piece as soon as its batch is done, and a
provenance sidecar (`generation.json`) that says what made the files.

The sidecar holds the checkpoint (name, path, BLAKE2b hash), model and representation, tunesmith's
version, the seed and every generation option; `evaluate` and `compare` read it (for example to
measure the reference in the model's own representation).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from symusic import Score

from tunesmith.evaluation.provenance import SIDECAR
from tunesmith.models.checkpoint import LoadedModel, file_hash

log = logging.getLogger(__name__)

def write_piece(score: Score, base: Path, request, title: str) -> list[Path]:
    """`base`.mid, plus audio and a piano-roll PNG on request; returns the paths written."""
    from tunesmith.io.midi import write_midi

    write_midi(score, base.with_suffix(".mid"))
    written = [base.with_suffix(".mid")]
    if score.note_num() == 0:  # nothing to hear or draw; the (empty) MIDI file still says so
        log.warning("%s: the model produced no notes; no audio or plot written", base.name)
        return written
    if request.audio:
        from tunesmith.io.audio import render_score

        render_score(score, base.with_suffix(f".{request.audio}"))
        written.append(base.with_suffix(f".{request.audio}"))
    if request.plot:
        from tunesmith.io.plot import plot_score

        plot_score(score, base.with_suffix(".png"), title=title)
        written.append(base.with_suffix(".png"))
    return written


def provenance(loaded: LoadedModel, request) -> dict[str, Any]:
    """What made a set of generated files (JSON-able)."""
    from tunesmith import __version__

    options = asdict(request)
    options["primer"] = str(request.primer) if request.primer else None
    return {
        "tunesmith_version": __version__,
        "checkpoint": {"path": str(loaded.path), "name": loaded.path.stem, "blake2b": file_hash(loaded.path)},
        "model": {"name": loaded.name, "config": loaded.checkpoint["model"].get("config", {})},
        "representation": loaded.checkpoint["representation"],
        "training_data": loaded.checkpoint.get("provenance", {}),
        "options": options,
    }


def write_sidecar(out: Path, record: dict[str, Any], files: list[Path]) -> Path:
    """Write `generation.json` (the record plus the MIDI files so far) atomically into `out`."""
    from tunesmith.io.atomic import write_atomic

    path = out / SIDECAR
    body = {**record, "files": sorted(p.name for p in files if p.suffix == ".mid")}
    write_atomic(path, (json.dumps(body, indent=2, default=str) + "\n").encode())
    return path
