"""`tunesmith corpus render NAME --out DIR`: a bundled corpus as audio files, so audio models train
without any download (seed 002 trained on the author's own MP3s, which nobody else has).

Each piece becomes `<piece id>.flac` (or .wav) in DIR, rendered by `io.audio.render_score`
(FluidSynth with a General MIDI soundfont; the built-in synthesizer when asked for or when FluidSynth
is missing, which the summary says). Every file is written atomically. `DIR/render.json` records the
settings and, per piece, the file and the engine that made it; a rerun with the same settings skips
every piece already rendered (resume after an interruption), and a rerun with other settings removes
the files of the old record and renders again. The record is rewritten after each piece, so a kill
loses at most the piece under way.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tunesmith.core.errors import UserError
from tunesmith.io.atomic import write_atomic

log = logging.getLogger(__name__)
RECORD = "render.json"
FORMATS = (".flac", ".wav")


def render_corpus(name: str, out: Path, *, limit: int | None = None, sample_rate: int = 12000,
                  engine: str = "auto", suffix: str = ".flac", mono: bool = False,
                  say: Callable[[str], None] = log.info) -> dict:
    """Render the first `limit` pieces (all when None) of corpus `name` into `out` (`mono`: the mean
    of the engine's channels, half the bytes); returns {"rendered": n, "skipped": n (already there),
    "engines": {description: count}, "files": [paths]}."""
    from tunesmith.corpora import load_corpus, piece_filename
    from tunesmith.io.audio import ENGINES, find_soundfont, render_score

    if suffix not in FORMATS:
        raise UserError(f"corpus render writes {' or '.join(FORMATS)} files, not {suffix}")
    if engine not in ENGINES:
        raise UserError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if not 8000 <= sample_rate <= 96000:
        raise UserError(f"--sample-rate must be 8000-96000 Hz, not {sample_rate}")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file: give a folder")
    pieces = load_corpus(name, limit)
    font = None if engine == "builtin" else find_soundfont()
    settings = {"corpus": name, "sample_rate": sample_rate, "engine": engine, "format": suffix,
                "soundfont": _soundfont_key(font), "mono": mono}
    out.mkdir(parents=True, exist_ok=True)
    record = _read_record(out, settings)
    counts, files, skipped = Counter(), [], 0
    for index, (piece_id, score) in enumerate(pieces):
        path = out / Path(piece_filename(piece_id)).with_suffix(suffix)
        done = record["pieces"].get(piece_id)
        if done and done["file"] == path.name and path.is_file() and path.stat().st_size > 0:
            skipped += 1
            files.append(path)
            continue
        try:
            description = _render(render_score, score, path, sample_rate, engine, mono)
        except UserError as error:  # a piece without notes: said, and the rest go on
            log.warning("corpus %s: piece %s not rendered: %s", name, piece_id, error)
            continue
        record["pieces"][piece_id] = {"file": path.name, "engine": description}
        write_atomic(out / RECORD, json.dumps(record, indent=1).encode())
        counts[description] += 1
        files.append(path)
        if (index + 1) % 25 == 0:
            say(f"rendered {index + 1} of {len(pieces)} pieces")
    return {"rendered": sum(counts.values()), "skipped": skipped, "engines": dict(counts), "files": files}


def _render(render_score, score, path: Path, sample_rate: int, engine: str, mono: bool) -> str:
    """Render one piece to `path` (atomically); for `mono`, through a temporary file, then mixed down."""
    if not mono:
        return render_score(score, path, sample_rate, engine=engine)
    import tempfile

    import soundfile as sf

    from tunesmith.io.audio import write_audio

    with tempfile.TemporaryDirectory(prefix="tunesmith-render-") as tmp:
        description = render_score(score, Path(tmp) / "piece.wav", sample_rate, engine=engine)
        samples, _ = sf.read(Path(tmp) / "piece.wav", dtype="float32", always_2d=True)
    write_audio(samples.mean(axis=1), sample_rate, path)
    return description


def _soundfont_key(font: Path | None) -> dict | None:
    """What identifies the soundfont a render used: its resolved path and size (a new soundfont
    means new audio, so the cache must not hold)."""
    if font is None:
        return None
    real = font.resolve()
    return {"path": str(real), "bytes": real.stat().st_size}


def _read_record(out: Path, settings: dict) -> dict:
    """The render record of `out` when it was made with `settings`; else a fresh one, and the files
    the old record lists are removed (a folder must never mix two renderings: training reads it all)."""
    try:
        record = json.loads((out / RECORD).read_text())
    except (OSError, ValueError):
        return {"settings": settings, "pieces": {}}
    valid = isinstance(record, dict) and isinstance(record.get("pieces"), dict)
    if valid and record.get("settings") == settings:
        return record
    log.info("%s was rendered with other settings: rendering again", out)
    for piece in record.get("pieces", {}).values() if valid else ():
        name = piece.get("file") if isinstance(piece, dict) else None
        if isinstance(name, str) and Path(name).name == name and name.endswith(FORMATS):
            (out / name).unlink(missing_ok=True)
    return {"settings": settings, "pieces": {}}
