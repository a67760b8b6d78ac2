"""Ingest speed: `tunesmith ingest` with one parser worker vs raw symusic, pretty_midi and music21.

    .venv/bin/python benchmarks/ingest.py [--repeat 20] [--runs 3] [--music21-files 8] [--music21-seconds 10]
                                          [--quick]   (only symusic raw vs ingest)

The corpus is tests/fixtures/realmidi (without the corrupt file and exact duplicates), copied
`--repeat` times; each copy gets 4 bytes after its last track (every parser here ignores them) so
that deduplication does not skip the work. Every parser reads the same files; notes/s counts the
notes symusic finds in each file, for all parsers alike. Timings are the best of `--runs` passes,
interleaved, because this machine is shared: the load average is printed with the results. The CPU
time per file is printed too: where CPU is scarce (a busy shared machine) wall time follows the total
CPU of the parent and the worker; with a core free for each, it follows the worker's alone.

Rows:
  tunesmith ingest (warm)  `ingest_folder(..., workers=1)` into a fresh dataset folder, with the
                           parser process already started (as in any run after the first file)
  tunesmith ingest (CLI)   the `tunesmith ingest --workers 1` command, interpreter start included
  symusic (raw)            `Score.from_file(path, format="midi")` per file, nothing else
  pretty_midi              `PrettyMIDI(path)` on the distinct files
  music21                  `converter.parse(path)` on files spread over the set, within a time budget
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "realmidi"


def build_corpus(folder: Path, repeat: int) -> tuple[list[Path], list[Path]]:
    """(every file of the repeated corpus, the distinct originals), written under `folder`."""
    import hashlib

    seen, originals = set(), []
    for path in sorted(FIXTURES.rglob("*")):
        if path.suffix.lower() in {".mid", ".midi"} and "MIDIs_corrupted" not in path.parts:
            digest = hashlib.sha256(path.read_bytes()).digest()
            if digest not in seen:
                seen.add(digest)
                originals.append(path)
    folder.mkdir(parents=True)
    files = []
    for copy in range(repeat):
        for i, path in enumerate(originals):
            files.append(folder / f"{copy:03d}-{i:03d}{path.suffix}")
            files[-1].write_bytes(path.read_bytes() + copy.to_bytes(4, "big"))
    return files, originals


def count_notes(files: list[Path]) -> int:
    from symusic import Score

    return sum(Score.from_file(f, format="midi").note_num() for f in files)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def time_symusic(files: list[Path]) -> tuple[float, float]:
    from symusic import Score

    wall, cpu = time.perf_counter(), cpu_seconds()
    for path in files:
        Score.from_file(path, format="midi")
    return time.perf_counter() - wall, cpu_seconds() - cpu


def time_ingest(corpus: Path, out: Path) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (this process + the parser worker) and the worker's CPU seconds."""
    import psutil

    from tunesmith.io import workers
    from tunesmith.io.ingest import ingest_folder
    from tunesmith.io.midi import Limits

    pool = workers.borrow_pool(1, Limits())
    worker = psutil.Process(pool._workers[0].process.pid)
    workers.return_pool(pool)
    parent, child = cpu_seconds(), sum(worker.cpu_times()[:2])
    wall = time.perf_counter()
    report = ingest_folder(corpus, out, workers=1)
    wall = time.perf_counter() - wall
    assert report["summary"]["skipped"] == 0 and report["summary"]["duplicate"] == 0, report["summary"]
    child = sum(worker.cpu_times()[:2]) - child
    return wall, cpu_seconds() - parent + child, child


def time_cli(corpus: Path, out: Path) -> float:
    wall = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tunesmith.cli", "ingest", str(corpus), "--out", str(out),
                    "--workers", "1"], check=True, capture_output=True)
    return time.perf_counter() - wall


def time_pretty_midi(files: list[Path]) -> float:
    import warnings

    import pretty_midi

    wall = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in files:
            pretty_midi.PrettyMIDI(str(path))
    return time.perf_counter() - wall


def time_music21(files: list[Path], budget_s: float) -> tuple[list[Path], float]:
    """music21 on `files` in order until `budget_s` is spent (at least one file): (files done, s)."""
    from music21 import converter

    done, wall = [], time.perf_counter()
    for path in files:
        converter.parse(str(path), format="midi", forceSource=True)
        done.append(path)
        if time.perf_counter() - wall > budget_s:
            break
    return done, time.perf_counter() - wall


def row(name: str, n_files: int, n_notes: int, seconds: float, cpu: float | None = None) -> dict:
    cpu_text = f"{cpu / n_files * 1e3:11.3f}" if cpu is not None else f"{'-':>11}"
    rates = f"{n_files / seconds:>11.0f}{n_notes / seconds:>13.0f}"
    print(f"{name:<26}{n_files:>7}{seconds:>9.3f}{rates} {cpu_text}")
    return {"files_s": n_files / seconds, "notes_s": n_notes / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="copies of the fixture set (default 20)")
    parser.add_argument("--runs", type=int, default=3, help="passes per parser; the best counts (default 3)")
    parser.add_argument("--music21-files", type=int, default=8, help="files music21 may parse (default 8)")
    parser.add_argument("--music21-seconds", type=float, default=10, help="music21 time budget (default 10)")
    parser.add_argument("--quick", action="store_true", help="only symusic raw vs ingest (warm)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="tunesmith-bench-") as tmp:
        run(Path(tmp), args)


def run(tmp: Path, args: argparse.Namespace) -> None:
    from tunesmith.io.ingest import ingest_folder

    files, originals = build_corpus(tmp / "corpus", args.repeat)
    notes = count_notes(files)
    ingest_folder(tmp / "corpus", tmp / "warm-up", workers=1)  # starts the parser process once
    best_raw, best_ingest = (1e9, 0.0), (1e9, 0.0, 0.0)
    for k in range(args.runs):  # interleaved, so both see the same load
        best_raw = min(best_raw, time_symusic(files))
        best_ingest = min(best_ingest, time_ingest(tmp / "corpus", tmp / f"out-{k}"))
        shutil.rmtree(tmp / f"out-{k}")
    rows = {"symusic (raw)": (len(files), notes, *best_raw),
            "tunesmith ingest (warm)": (len(files), notes, *best_ingest[:2])}
    if not args.quick:
        rows |= slow_rows(tmp, args, files, originals, notes)
    print(f"corpus: {len(files)} files ({len(originals)} distinct x {args.repeat}), {notes} notes; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'parser':<26}{'files':>7}{'seconds':>9}{'files/s':>11}{'notes/s':>13} {'cpu ms/file':>11}")
    rates = {name: row(name, *values) for name, values in rows.items()}
    print()
    print_ratios(rates)
    worker_ms, raw_ms = best_ingest[2] / len(files) * 1e3, best_raw[1] / len(files) * 1e3
    print(f"CPU per file: symusic {raw_ms:.3f} ms; ingest worker {worker_ms:.3f} ms + parent "
          f"{best_ingest[1] / len(files) * 1e3 - worker_ms:.3f} ms. With a core free for each process the "
          f"worker alone sets the pace: about {raw_ms / worker_ms:.2f} x symusic raw.")


def slow_rows(tmp: Path, args: argparse.Namespace, files: list[Path], originals: list[Path],
              notes: int) -> dict[str, tuple]:
    """The CLI, pretty_midi and music21 rows: (files, notes, seconds)."""
    runs = max(1, args.runs - 1)
    cli = min(time_cli(tmp / "corpus", tmp / f"cli-{k}") for k in range(runs))
    pm = min(time_pretty_midi(originals) for _ in range(runs))
    spread = originals[:: max(1, len(originals) // args.music21_files)][: args.music21_files]
    spread.sort(key=lambda path: path.stat().st_size)  # smallest first: the budget covers more files
    subset, m21 = time_music21(spread, args.music21_seconds)
    return {"tunesmith ingest (CLI)": (len(files), notes, cli),
            "pretty_midi": (len(originals), count_notes(originals), pm),
            "music21": (len(subset), count_notes(subset), m21)}


def print_ratios(rates: dict[str, dict]) -> None:
    raw = rates["symusic (raw)"]
    for name in ("tunesmith ingest (warm)", "tunesmith ingest (CLI)"):
        if name not in rates:
            continue
        ours, label = rates[name], name.removeprefix("tunesmith ")
        print(f"{label} / symusic raw : {ours['files_s'] / raw['files_s']:5.2f} x files/s   (target >= 0.5)")
        if "pretty_midi" in rates:
            pretty, m21 = rates["pretty_midi"], rates["music21"]
            print(f"{label} / pretty_midi : {ours['files_s'] / pretty['files_s']:5.1f} x files/s, "
                  f"{ours['notes_s'] / pretty['notes_s']:5.1f} x notes/s   (target >= 30)")
            print(f"{label} / music21     : {ours['notes_s'] / m21['notes_s']:5.0f} x notes/s")


if __name__ == "__main__":
    main()
