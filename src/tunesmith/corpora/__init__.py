"""Bundled corpora, usable by name as training data (`tunesmith corpus list | export`).

The four corpora come from music21's bundled corpus and are converted to symusic Scores by
`music21_convert` (our own walk of the streams, not music21's MIDI writer). Converting takes minutes,
so each corpus is converted once and cached (`cache.py`): `bach` ships prebuilt inside the package
(`data/bach.npz`, see `data/PROVENANCE.md`); the others are built on first use, with 2 worker
processes, into the user cache dir (`$TUNESMITH_CACHE` overrides it). Benchmark files that users
download themselves have their own loaders: `jsb.py` (JSB Chorales) and `lpd.py` (LPD-5 npz).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from symusic import Score

from tunesmith.core.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Corpus:
    """A bundled corpus: the files of music21's corpus folder `folder` with one of `suffixes`."""

    name: str
    description: str  # size and source, shown by `tunesmith corpus list`
    folder: str
    suffixes: tuple[str, ...]
    exclude: tuple[str, ...] = ()  # file stems left out
    unique_numbers: bool = False  # ABC tune numbers are global: keep the first copy of each


CORPORA: dict[str, Corpus] = {
    "bach": Corpus(
        "bach", "409 chorales by J.S. Bach, mostly 4 voices, 110k notes (music21 corpus, MusicXML; shipped)",
        "bach", (".mxl", ".xml"), exclude=("bwv846",),  # bwv846 is a keyboard prelude, not a chorale
    ),
    "essen": Corpus(
        "essen", "8,462 folk melodies of the Essen Folksong Collection, 444k notes (music21 corpus, ABC)",
        "essenFolksong", (".abc",), exclude=("test0", "test1", "testd", "teste"),  # music21's test tunes
    ),
    "oneill": Corpus(
        "oneill", "1,838 Irish melodies of O'Neill's Music of Ireland, 196k notes (music21 corpus, ABC)",
        "oneills1850", (".abc",), unique_numbers=True,  # music21's files overlap
    ),
    "palestrina": Corpus(
        "palestrina", "1,318 mass movements by Palestrina, 4-6 voices, 669k notes (music21 corpus, Humdrum)",
        "palestrina", (".krn",),
    ),
}

SHIPPED_DIR = Path(__file__).parent / "data"
WORKERS = 2  # music21 parsing is CPU-bound; two processes keep a laptop usable


def get_corpus(name: str) -> Corpus:
    """The Corpus called `name`; UserError listing the known names otherwise."""
    if name not in CORPORA:
        raise UserError(f"unknown corpus {name!r}; known corpora: {', '.join(CORPORA)}")
    return CORPORA[name]


def load_corpus(name: str, limit: int | None = None) -> list[tuple[str, Score]]:
    """`(piece_id, Score)` of every piece of corpus `name` (the first `limit`), in a stable order.

    Scores are in ticks at 480 per quarter, one track per part. Reads the shipped or cached copy;
    without one, converts the corpus (minutes for the big ones) and caches it. A limited load with
    no cache parses only the pieces it returns and caches nothing.
    """
    corpus = get_corpus(name)
    if limit is not None and limit < 0:
        raise UserError(f"limit must be 0 or more, got {limit}")
    cached = _read_any_cache(name, limit)
    if cached is not None:
        return cached[1]
    from tunesmith.corpora.music21_corpora import convert_files

    if limit is None:
        log.info("converting corpus %r from music21 once; it is cached for next time", name)
    pieces, failed = convert_files(_files(corpus), limit, WORKERS, name, corpus.unique_numbers)
    if limit is None:
        _write_user_cache(name, pieces, failed)
    _report_failures(name, failed)
    return pieces


def corpus_failures(name: str) -> list[tuple[str, str]]:
    """(piece id, reason) of every piece of `name` that could not be converted (from its cache)."""
    get_corpus(name)
    cached = _read_any_cache(name, limit=0)
    if cached is None:
        load_corpus(name)
        cached = _read_any_cache(name, limit=0)
    return [tuple(f) for f in cached[0]["failed"]] if cached else []


def _files(corpus: Corpus) -> list[Path]:
    from tunesmith.corpora.music21_corpora import corpus_files

    return corpus_files(corpus.folder, corpus.suffixes, corpus.exclude)


def _read_any_cache(name: str, limit: int | None = None):
    """(metadata, pieces) from the shipped cache, else the user cache, else None."""
    from tunesmith.corpora.cache import corpus_cache_path, read_cache

    for path in (SHIPPED_DIR / f"{name}.npz", corpus_cache_path(name)):
        if path.is_file():
            cached = read_cache(path, limit)
            if cached is not None:
                return cached
    return None


def _write_user_cache(name: str, pieces: list[tuple[str, Score]], failed: list[tuple[str, str]]) -> None:
    import music21

    from tunesmith.corpora.cache import corpus_cache_path, pack, write_cache

    arrays = pack(name, pieces, failed, {"music21": music21.__version__})
    try:
        write_cache(corpus_cache_path(name), arrays)
    except OSError as error:  # a read-only cache dir costs speed next time, not correctness now
        log.warning("could not cache corpus %r: %s", name, error)


def _report_failures(name: str, failed: list[tuple[str, str]]) -> None:
    for piece_id, reason in failed:
        log.warning("corpus %s: piece %s could not be converted: %s", name, piece_id, reason)


def piece_filename(piece_id: str) -> str:
    """A portable MIDI file name for a piece id: characters other than [A-Za-z0-9._-] become '_'."""
    safe = "".join(c if c.isalnum() and c.isascii() or c in "._-" else "_" for c in piece_id)
    return f"{safe.lstrip('.') or 'piece'}.mid"


def export_corpus(name: str, out: Path | str, limit: int | None = None) -> list[Path]:
    """Write each piece of corpus `name` (the first `limit`) as `<piece id>.mid` in `out`; the paths."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    from tunesmith.io.midi import write_midi  # atomic: temp file in the same folder, then rename

    pieces = load_corpus(name, limit)
    out.mkdir(parents=True, exist_ok=True)
    return [write_midi(score, out / piece_filename(piece_id)) for piece_id, score in pieces]

