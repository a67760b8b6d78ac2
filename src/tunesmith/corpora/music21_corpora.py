"""Parse the music21 corpus files of a bundled corpus into Scores, in parallel worker processes.

A *unit* is one parse job: one file (a chorale, a mass movement, or a whole ABC book of tunes) or,
when only the first few pieces are wanted, one ABC tune picked by its reference number (`X:`).
Piece ids are the file stem (`bwv1.6`, `Agnus_01`) or, for ABC books, `<stem>-X<number>`
(`altdeu10-X1`); pieces come in the order of sorted file names, then tune order in the file.

music21 parses about 4-40 pieces per second, so workers are separate processes ("spawn", safe
even when the parent has torch loaded) and every failure is kept as `(piece id, reason)`.
"""

from __future__ import annotations

import re
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from symusic import Score

_X_LINE = re.compile(rb"^X:\s*(\d+)", re.MULTILINE)


@dataclass(frozen=True)
class Unit:
    """One parse job: `path` whole (`numbers` lists its ABC tunes, empty otherwise) or one tune of it."""

    path: str
    numbers: tuple[str, ...] = ()
    whole_file: bool = True

    @property
    def piece_ids(self) -> list[str]:
        stem = Path(self.path).stem
        return [f"{stem}-X{n}" for n in self.numbers] if self.numbers else [stem]


def music21_corpus_dir() -> Path:
    """The folder of music21's bundled corpus files."""
    import music21.corpus

    return Path(music21.corpus.__file__).parent


def corpus_files(folder: str, suffixes: tuple[str, ...], exclude: tuple[str, ...] = ()) -> list[Path]:
    """Files of music21's corpus `folder` with one of `suffixes`, minus stems in `exclude`, sorted."""
    root = music21_corpus_dir() / folder
    files = [p for p in root.iterdir() if p.suffix.lower() in suffixes and p.stem not in exclude]
    return sorted(files, key=lambda p: p.name)


def abc_numbers(path: Path) -> tuple[str, ...]:
    """Reference numbers (`X:` lines) of the tunes of an ABC file, in file order."""
    return tuple(m.group(1).decode() for m in _X_LINE.finditer(path.read_bytes()))


def plan_units(files: list[Path], limit: int | None = None, unique_numbers: bool = False) -> list[Unit]:
    """Parse jobs for `files`: one per file, or one per ABC tune up to `limit` pieces when limited.

    With `unique_numbers` (books numbering their tunes across files, like O'Neill's), a tune number
    already seen in an earlier file is skipped: overlapping files would otherwise put the same tune
    twice in the corpus, and possibly into two splits.
    """
    units: list[Unit] = []
    wanted = float("inf") if limit is None else limit
    count = 0
    seen: set[str] = set()
    for path in files:
        if count >= wanted:
            break
        numbers = abc_numbers(path) if path.suffix.lower() == ".abc" else ()
        if unique_numbers:
            numbers = tuple(n for n in numbers if n not in seen)
            seen.update(numbers)
            if not numbers:
                continue
        if numbers and limit is not None:
            for number in numbers[: int(wanted - count)]:
                units.append(Unit(str(path), (number,), whole_file=False))
        else:
            units.append(Unit(str(path), numbers))
        count += max(1, len(numbers))
    return units


def parse_unit(unit: Unit) -> tuple[list[tuple[str, Score]], list[tuple[str, str]]]:
    """([(piece id, Score)], [(piece id, reason)]) of one unit; never raises for a bad piece."""
    from music21 import converter

    from tunesmith.corpora.music21_convert import stream_to_score

    ids = unit.piece_ids
    try:
        if unit.whole_file:
            parsed = converter.parse(unit.path, forceSource=True)
        else:
            parsed = converter.parse(unit.path, forceSource=True, number=int(unit.numbers[0]))
        streams = list(parsed.scores) if "Opus" in parsed.classes else [parsed]
    except Exception as error:  # noqa: BLE001 - music21 raises many types; each becomes a reason
        if unit.numbers and unit.whole_file:  # one bad tune must not lose the whole book
            return _parse_tunes_one_by_one(unit)
        return [], [(piece_id, _reason(error)) for piece_id in ids]
    by_number = _match_tunes(unit, streams)
    pieces, failed = [], []
    for piece_id, stream in by_number:
        if stream is None:
            failed.append((piece_id, "music21 returned no tune with this reference number"))
            continue
        try:
            pieces.append((piece_id, stream_to_score(stream)))
        except Exception as error:  # noqa: BLE001
            failed.append((piece_id, _reason(error)))
    return pieces, failed


def _match_tunes(unit: Unit, streams: list) -> list[tuple[str, object]]:
    """Pair piece ids with parsed streams: by ABC reference number for a whole book, else the one piece."""
    if not unit.numbers or not unit.whole_file:
        return [(unit.piece_ids[0], streams[0] if streams else None)]
    found = {str(getattr(s.metadata, "number", "") or ""): s for s in streams}
    return [(piece_id, found.get(n)) for piece_id, n in zip(unit.piece_ids, unit.numbers, strict=True)]


def _parse_tunes_one_by_one(unit: Unit) -> tuple[list[tuple[str, Score]], list[tuple[str, str]]]:
    pieces, failed = [], []
    for number in unit.numbers:
        got, bad = parse_unit(Unit(unit.path, (number,), whole_file=False))
        pieces += got
        failed += bad
    return pieces, failed


def _reason(error: Exception) -> str:
    text = " ".join(str(error).split()) or "no message"
    return f"{type(error).__name__}: {text}"[:300]


def convert_files(
    files: list[Path],
    limit: int | None = None,
    workers: int = 2,
    label: str = "",
    unique_numbers: bool = False,
) -> tuple[list[tuple[str, Score]], list[tuple[str, str]]]:
    """Parse `files` (the first `limit` pieces when given) with up to `workers` processes.

    Returns (pieces in stable order, failures). Small jobs run in this process: starting a worker
    costs about 2 s of music21 import. `unique_numbers`: see `plan_units`.
    """
    units = plan_units(files, limit, unique_numbers)
    results: list = [None] * len(units)
    if workers <= 1 or len(units) <= 8:
        for index, unit in enumerate(units):
            results[index] = parse_unit(unit)
    else:
        _run_parallel(units, results, workers, label)
    pieces = [piece for got, _ in results for piece in got]
    failed = [failure for _, bad in results for failure in bad]
    return (pieces[:limit] if limit is not None else pieces), failed


def _run_parallel(units: list[Unit], results: list, workers: int, label: str) -> None:
    """Fill `results[i]` with `parse_unit(units[i])`; biggest units first so workers finish together."""
    from tqdm import tqdm

    order = sorted(range(len(units)), key=lambda i: -Path(units[i].path).stat().st_size)
    total = sum(len(u.piece_ids) for u in units)
    with (
        ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool,
        tqdm(total=total, desc=f"parsing {label} with music21", unit="piece", file=sys.stderr,
             disable=None) as bar,
    ):
        futures = {pool.submit(parse_unit, units[i]): i for i in order}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            bar.update(len(units[futures[future]].piece_ids))
