"""Build corpus caches: `python -m tunesmith.corpora.build [NAME ...] [--out DIR] [--workers N]`.

With no `--out`, writes the caches shipped inside the package (`corpora/data/<name>.npz`); by default
only `bach` is shipped (see `data/PROVENANCE.md` for why the others are not). With `--out DIR`, any
corpus can be built into DIR, e.g. the user cache dir to warm it ahead of training. Prints one line
per corpus: pieces, notes, failures, seconds, file size; and every failed piece with its reason.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

SHIPPED = ("bach",)


def build(name: str, out_dir: Path, workers: int = 2) -> dict:
    """Convert corpus `name` from music21 with `workers` processes and write `out_dir/<name>.npz`."""
    import music21

    from tunesmith.corpora import _files, get_corpus
    from tunesmith.corpora.cache import pack, write_cache
    from tunesmith.corpora.music21_corpora import convert_files

    corpus = get_corpus(name)
    began = time.perf_counter()
    pieces, failed = convert_files(_files(corpus), None, workers, name, corpus.unique_numbers)
    seconds = time.perf_counter() - began
    path = out_dir / f"{name}.npz"
    write_cache(path, pack(name, pieces, failed, {"music21": music21.__version__}))
    return {
        "name": name, "pieces": len(pieces), "notes": sum(s.note_num() for _, s in pieces),
        "failed": failed, "seconds": seconds, "bytes": path.stat().st_size, "path": path,
    }


def main(argv: list[str] | None = None) -> int:
    from tunesmith.corpora import CORPORA, SHIPPED_DIR

    parser = argparse.ArgumentParser(prog="python -m tunesmith.corpora.build", description="Build caches.")
    parser.add_argument("names", nargs="*", default=list(SHIPPED), help=f"corpora among {', '.join(CORPORA)}")
    parser.add_argument("--out", type=Path, default=SHIPPED_DIR, help="folder for <name>.npz")
    parser.add_argument("--workers", type=int, default=2, help="music21 parser processes")
    args = parser.parse_args(argv)
    for name in args.names:
        stats = build(name, args.out, args.workers)
        print(
            f"{name}: {stats['pieces']} pieces, {stats['notes']} notes, {len(stats['failed'])} failed, "
            f"{stats['seconds']:.1f} s with {args.workers} workers, "
            f"{stats['bytes'] / 1e6:.2f} MB -> {stats['path']}"
        )
        for piece_id, reason in stats["failed"]:
            print(f"  failed {piece_id}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
