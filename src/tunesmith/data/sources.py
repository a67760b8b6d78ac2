"""Resolve a user's data argument to scores: a bundled corpus name, an ingest dataset folder, a MIDI folder,
or a JSB Chorales benchmark file (JSON or pickle; its pieces keep the file's own splits, see `file_split`).

Torch-free, so evaluation and the CLI can use it. Every source yields `(piece_id, Score)` pairs in a
stable order; piece ids are what splits hash (see `splits.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from pathlib import Path

from symusic import Score

from tunesmith.core.errors import SkipFile, UserError

MIDI_SUFFIXES = {".mid", ".midi", ".kar", ".smf", ".rmi"}
JSB_SUFFIXES = {".json", ".pickle", ".pkl"}


def describe_source(source: str | Path) -> str:
    """'corpus', 'dataset' (an ingest output folder), 'midi-folder', 'midi-file' or 'jsb-file'; UserError
    otherwise."""
    from tunesmith.corpora import CORPORA
    from tunesmith.io.cache import is_dataset_dir

    path = Path(source)
    if str(source) in CORPORA and not path.exists():
        return "corpus"
    if path.is_dir():
        return "dataset" if is_dataset_dir(path) else "midi-folder"
    if path.is_file() and path.suffix.lower() in MIDI_SUFFIXES:
        return "midi-file"
    if path.is_file() and path.suffix.lower() in JSB_SUFFIXES:
        return "jsb-file"
    raise UserError(
        f"{source} is neither a bundled corpus ({', '.join(CORPORA)}), a dataset folder, MIDI files, "
        "nor a JSB Chorales file"
    )


def iter_scores(source: str | Path, limit: int | None = None) -> Iterator[tuple[str, Score]]:
    """Yield `(piece_id, Score)` from `source`; unreadable MIDI files are skipped with a warning."""
    yield from islice(_iter_kind(describe_source(source), source), limit)


def load_scores(source: str | Path, limit: int | None = None) -> list[tuple[str, Score]]:
    """All `(piece_id, Score)` of `source` (see `iter_scores`) as a list."""
    return list(iter_scores(source, limit))


def _iter_kind(kind: str, source: str | Path) -> Iterator[tuple[str, Score]]:
    if kind == "corpus":
        from tunesmith.corpora import load_corpus

        yield from load_corpus(str(source))
    elif kind == "jsb-file":
        yield from _iter_jsb(Path(source))
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


def _iter_jsb(path: Path) -> Iterator[tuple[str, Score]]:
    """Pieces of a JSB file as Scores (a run of sounding steps is one note), with ids 'SPLIT/INDEX'; the
    grid comes from the file name (16th or quarter, see `corpora.jsb.grid_from_name`; quarter if unsure)."""
    from tunesmith.corpora.jsb import grid_from_name, jsb_to_score, load_jsb

    grid = grid_from_name(path) or 1
    for split, rolls in load_jsb(path).items():
        for i, roll in enumerate(rolls):
            yield f"{split}/{i:03d}", jsb_to_score(roll, grid)


def file_split(piece_id: str) -> str:
    """The split a JSB file assigns to one of its pieces (the id's prefix)."""
    return piece_id.split("/", 1)[0]
