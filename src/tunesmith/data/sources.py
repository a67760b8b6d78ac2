"""Resolve a user's data argument to scores: a bundled corpus name, an ingest dataset folder, or a MIDI folder.

Torch-free, so evaluation and the CLI can use it. Every source yields `(piece_id, Score)` pairs in a
stable order; piece ids are what splits hash (see `splits.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from symusic import Score

from tunesmith.core.errors import SkipFile, UserError

MIDI_SUFFIXES = {".mid", ".midi", ".kar", ".smf", ".rmi"}


def describe_source(source: str | Path) -> str:
    """'corpus', 'dataset' (an ingest output folder), 'midi-folder' or 'midi-file'; UserError otherwise."""
    from tunesmith.corpora import CORPORA
    from tunesmith.io.cache import is_dataset_dir

    path = Path(source)
    if str(source) in CORPORA and not path.exists():
        return "corpus"
    if path.is_dir():
        return "dataset" if is_dataset_dir(path) else "midi-folder"
    if path.is_file() and path.suffix.lower() in MIDI_SUFFIXES:
        return "midi-file"
    raise UserError(
        f"{source} is neither a bundled corpus ({', '.join(CORPORA)}), a dataset folder, nor MIDI files"
    )


def iter_scores(source: str | Path, limit: int | None = None) -> Iterator[tuple[str, Score]]:
    """Yield `(piece_id, Score)` from `source`; unreadable MIDI files are skipped with a warning."""
    kind = describe_source(source)
    produced = 0
    for piece_id, score in _iter_kind(kind, source):
        if limit is not None and produced >= limit:
            return
        produced += 1
        yield piece_id, score


def load_scores(source: str | Path, limit: int | None = None) -> list[tuple[str, Score]]:
    """All `(piece_id, Score)` of `source` (see `iter_scores`) as a list."""
    return list(iter_scores(source, limit))


def _iter_kind(kind: str, source: str | Path) -> Iterator[tuple[str, Score]]:
    if kind == "corpus":
        from tunesmith.corpora import load_corpus

        yield from load_corpus(str(source))
    elif kind == "dataset":
        from tunesmith.io.cache import open_dataset

        yield from open_dataset(Path(source)).iter_scores()
    else:
        yield from _iter_midi(Path(source))


def _iter_midi(path: Path) -> Iterator[tuple[str, Score]]:
    import sys

    from tunesmith.io.midi import read_midi

    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file() and not p.is_symlink()
    )
    for file in files:
        try:
            yield str(file.relative_to(path) if path.is_dir() else file.name), read_midi(file)
        except SkipFile as reason:
            print(f"skipped {file}: {reason}", file=sys.stderr)
