"""Resolve a user's data argument to scores: a bundled corpus name, an ingest dataset folder, a folder
of MIDI and/or LPD-5 `.npz` files (e.g. the Lakh Pianoroll Dataset's `lpd_5_cleansed/`), one MIDI file,
one LPD-5 `.npz` file, or a JSB Chorales benchmark file (JSON or pickle; its pieces keep the file's own
splits, see `file_split`).

Torch-free, so evaluation and the CLI can use it. Every source yields `(piece_id, Score)` pairs in a
stable order; piece ids are what splits hash (see `splits.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

from symusic import Score

from tunesmith.core.constants import LPD_SUFFIXES, MIDI_SUFFIXES
from tunesmith.core.errors import SkipFile, UserError

log = logging.getLogger(__name__)

JSB_SUFFIXES = (".json", ".pickle", ".pkl")


def describe_source(source: str | Path) -> str:
    """'corpus', 'dataset' (an ingest output folder), 'midi-folder' (a folder of MIDI and/or LPD npz
    files), 'midi-file', 'lpd-file' or 'jsb-file'; UserError otherwise."""
    from tunesmith.corpora import CORPORA
    from tunesmith.io.cache import is_dataset_dir

    path = Path(source)
    if str(source) in CORPORA and not path.exists():
        return "corpus"
    if path.is_dir():
        return "dataset" if is_dataset_dir(path) else "midi-folder"
    if path.is_file() and path.suffix.lower() in MIDI_SUFFIXES:
        return "midi-file"
    if path.is_file() and path.suffix.lower() in LPD_SUFFIXES:
        return "lpd-file"
    if path.is_file() and path.suffix.lower() in JSB_SUFFIXES:
        return "jsb-file"
    raise UserError(
        f"{source} is neither a bundled corpus ({', '.join(CORPORA)}), a dataset folder, MIDI or LPD "
        "(.npz) files, nor a JSB Chorales file"
    )


def iter_scores(source: str | Path, limit: int | None = None, verify: bool | None = None,
                ) -> Iterator[tuple[str, Score]]:
    """Yield `(piece_id, Score)` from `source`; unreadable files of a folder are skipped with a warning
    (a single unreadable file, or a folder where no file is readable, is a UserError). `verify` applies to an ingest
    dataset (see `io.cache.open_dataset`: None hashes its shards once per process)."""
    yield from islice(_iter_kind(describe_source(source), source, verify), limit)


def load_scores(source: str | Path, limit: int | None = None, verify: bool | None = None,
                ) -> list[tuple[str, Score]]:
    """All `(piece_id, Score)` of `source` (see `iter_scores`) as a list."""
    return list(iter_scores(source, limit, verify))


def _iter_kind(kind: str, source: str | Path, verify: bool | None) -> Iterator[tuple[str, Score]]:
    if kind == "corpus":
        from tunesmith.corpora import load_corpus

        yield from load_corpus(str(source))
    elif kind == "jsb-file":
        yield from _iter_jsb(Path(source))
    elif kind == "dataset":
        from tunesmith.io.cache import open_dataset

        yield from open_dataset(Path(source), verify).iter_scores()
    elif kind == "lpd-file":
        yield Path(source).name, _read_piece(Path(source))
    else:
        yield from _iter_files(Path(source))


def _read_piece(path: Path) -> Score:
    """One MIDI (guarded reader; SkipFile when unusable) or LPD-5 npz file (UserError) as a Score."""
    if path.suffix.lower() in LPD_SUFFIXES:
        from tunesmith.corpora.lpd import load_lpd

        return load_lpd(path)
    from tunesmith.io.midi import read_midi

    return read_midi(path)


def _iter_files(path: Path) -> Iterator[tuple[str, Score]]:
    """The MIDI and LPD files of a folder (recursively, no symlinks) in path order, ids relative to the
    folder; or one MIDI file, which must be readable (UserError). Unusable files of a folder are skipped:
    one warning names the first and counts the rest (--verbose lists each); a folder with files and
    none usable is a UserError."""
    if path.is_file():
        try:
            yield path.name, _read_piece(path)
        except SkipFile as reason:
            raise UserError(f"{path} is not a readable MIDI file ({reason})") from None
        return
    suffixes = MIDI_SUFFIXES + LPD_SUFFIXES
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in suffixes and p.is_file() and not p.is_symlink())
    skipped: list[str] = []
    used = 0
    try:
        for file in files:
            try:
                piece = _read_piece(file)
            except (SkipFile, UserError) as reason:
                skipped.append(f"{file}: {reason}")
                log.debug("skipped %s", skipped[-1])
                continue
            used += 1
            yield str(file.relative_to(path)), piece
    finally:
        if skipped and used:
            more = f" and {len(skipped) - 1} more of the {len(files)} files in {path} (--verbose lists them)"
            log.warning("skipped %s%s", skipped[0], more if len(skipped) > 1 else "")
    if skipped and not used:
        raise UserError(f"none of the {len(files)} MIDI/LPD files in {path} could be read (the first, {skipped[0]})")


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
