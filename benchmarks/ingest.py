"""Ingest speed: `tunesmith ingest` with one and two parser workers vs raw symusic in one and two processes.

    .venv/bin/python benchmarks/ingest.py [--repeat 20] [--runs 3] [--music21-files 8] [--music21-seconds 10]
                                          [--quick]   (only symusic raw vs ingest, one and two processes)

The corpus is tests/fixtures/realmidi (without the corrupt file and exact duplicates), copied
`--repeat` times; each copy gets 4 bytes after its last track (every parser here ignores them) so
that deduplication does not skip the work. Every parser reads the same files; notes/s counts the
notes symusic finds in each file, for all parsers alike. Timings are the best of `--runs` passes,
interleaved, because this machine may be shared: the load average before and after is printed with
the results, and two-process figures only mean something when two cores are idle (load average well
under 1 on 2 cores). The CPU time per file (user + sys) of the parent and of the workers is printed too,
with the speeds it allows on two idle cores: where CPU is scarce, wall time follows the total CPU of the
parent and the workers; with a core free for each, it follows the busiest process. The workers read, hash,
parse, check and pack each file; the parent (walking the folder, writing shards) runs beside one worker on
the second core, so two workers / one worker is at most 2 x one worker's CPU per file / a two-worker run's
total CPU per file (the last line): the smaller the parent's share, the closer to 2.
Results go to benchmarks/results/ingest.txt.

Rows:
  symusic (raw)            `Score.from_file(path, format="midi")` per file, nothing else, one process
  symusic (raw, 2 procs)   the same, the files split between two started processes
  tunesmith ingest 1 worker `ingest_folder(..., workers=1)` into a fresh dataset folder, with the
                           parser process already started (as in any run after the first file)
  tunesmith ingest 2 workers the same with `workers=2`
  tunesmith ingest (CLI)   the `tunesmith ingest --workers 1` command, interpreter start included
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
RESULTS = ROOT / "benchmarks" / "results" / "ingest.txt"


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


def _parse_half(paths: list[str]) -> float:
    """In a pool process: parse `paths` with symusic; its CPU seconds."""
    from symusic import Score

    cpu = cpu_seconds()
    for path in paths:
        Score.from_file(path, format="midi")
    return cpu_seconds() - cpu


def time_symusic_two(pool, files: list[Path]) -> tuple[float, float]:
    """Raw symusic with the files split between the two started processes of `pool`: (wall s, CPU s)."""
    halves = [[str(f) for f in files[0::2]], [str(f) for f in files[1::2]]]
    wall = time.perf_counter()
    cpu = sum(pool.map(_parse_half, halves))
    return time.perf_counter() - wall, cpu


def time_ingest(corpus: Path, out: Path, n_workers: int) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (this process + the parser workers) and the workers' CPU seconds."""
    import psutil

    from tunesmith.io import workers
    from tunesmith.io.ingest import ingest_folder
    from tunesmith.io.midi import Limits

    pool = workers.borrow_pool(n_workers, Limits(), rings=True)
    procs = [psutil.Process(w.process.pid) for w in pool._workers]
    workers.return_pool(pool)
    parent, child = cpu_seconds(), sum(sum(p.cpu_times()[:2]) for p in procs)
    wall = time.perf_counter()
    report = ingest_folder(corpus, out, workers=n_workers)
    wall = time.perf_counter() - wall
    assert report["summary"]["skipped"] == 0 and report["summary"]["duplicate"] == 0, report["summary"]
    assert all(p.is_running() for p in procs), "a parser worker was replaced during the timed run"
    child = sum(sum(p.cpu_times()[:2]) for p in procs) - child
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


def row(name: str, n_files: int, n_notes: int, seconds: float, cpu: float | None = None) -> tuple[dict, str]:
    cpu_text = f"{cpu / n_files * 1e3:11.3f}" if cpu is not None else f"{'-':>11}"
    rates = f"{n_files / seconds:>11.0f}{n_notes / seconds:>13.0f}"
    line = f"{name:<28}{n_files:>7}{seconds:>9.3f}{rates} {cpu_text}"
    return {"files_s": n_files / seconds, "notes_s": n_notes / seconds}, line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="copies of the fixture set (default 20)")
    parser.add_argument("--runs", type=int, default=3, help="passes per parser; the best counts (default 3)")
    parser.add_argument("--music21-files", type=int, default=8, help="files music21 may parse (default 8)")
    parser.add_argument("--music21-seconds", type=float, default=10, help="music21 time budget (default 10)")
    parser.add_argument("--quick", action="store_true", help="only symusic raw vs ingest (one and two processes)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="tunesmith-bench-") as tmp:
        lines = run(Path(tmp), args)
    command = "python benchmarks/ingest.py " + " ".join(sys.argv[1:])
    RESULTS.write_text(f"$ {command.strip()}\n" + "\n".join(lines) + "\n")


def run(tmp: Path, args: argparse.Namespace) -> list[str]:
    """Measure every row, print the table and the ratios; the printed lines."""
    from concurrent.futures import ProcessPoolExecutor

    from tunesmith.io.ingest import ingest_folder

    files, originals = build_corpus(tmp / "corpus", args.repeat)
    notes = count_notes(files)
    load_before = os.getloadavg()
    for n in (1, 2):
        ingest_folder(tmp / "corpus", tmp / f"warm-up-{n}", workers=n)  # starts the parser processes once
    raw, raw2, ingest = (1e9, 0.0), (1e9, 0.0), {1: (1e9, 0.0, 0.0), 2: (1e9, 0.0, 0.0)}
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_parse_half, [[str(files[0])]] * 2))  # both processes started, symusic imported
        for k in range(args.runs):  # interleaved, so all see the same load
            raw = min(raw, time_symusic(files))
            raw2 = min(raw2, time_symusic_two(pool, files))
            for n in (1, 2):
                ingest[n] = min(ingest[n], time_ingest(tmp / "corpus", tmp / f"out-{n}-{k}", n))
                shutil.rmtree(tmp / f"out-{n}-{k}")
    rows = {"symusic (raw)": (len(files), notes, *raw), "symusic (raw, 2 procs)": (len(files), notes, *raw2),
            "tunesmith ingest 1 worker": (len(files), notes, *ingest[1][:2]),
            "tunesmith ingest 2 workers": (len(files), notes, *ingest[2][:2])}
    if not args.quick:
        rows |= slow_rows(tmp, args, files, originals, notes)
    load = ", ".join(f"{a:.2f}" for a in load_before) + " before; " + ", ".join(f"{a:.2f}" for a in os.getloadavg())
    lines = [f"corpus: {len(files)} files ({len(originals)} distinct x {args.repeat}), {notes} notes",
             f"load average (1, 5, 15 min) {load} after, on {os.cpu_count()} cores "
             f"(two-process rows need two idle cores: load well under 1)",
             f"{'parser':<28}{'files':>7}{'seconds':>9}{'files/s':>11}{'notes/s':>13} {'cpu ms/file':>11}"]
    rates = {}
    for name, values in rows.items():
        rates[name], line = row(name, *values)
        lines.append(line)
    lines += ["", *ratio_lines(rates), *cpu_lines(len(files), raw, ingest)]
    print("\n".join(lines))
    return lines


def cpu_lines(n_files: int, raw: tuple, ingest: dict) -> list[str]:
    """CPU per file (ms, user + sys) of symusic and of ingest's parent and workers, and the speeds that
    CPU allows on two idle cores: these hold where the machine is shared and wall times do not."""
    raw_ms = raw[1] / n_files * 1e3
    split = {n: (workers_cpu / n_files * 1e3, (total - workers_cpu) / n_files * 1e3)
             for n, (_, total, workers_cpu) in ingest.items()}
    out = [f"CPU per file, {n} worker(s): workers {w:.3f} ms + parent {p:.3f} ms = {w + p:.3f} ms; parent's share "
           f"{p / (w + p):.0%} (symusic alone {raw_ms:.3f} ms)" for n, (w, p) in split.items()]
    (w1, p1), (w2, p2) = split[1], split[2]
    one, two = max(w1, p1), max((w2 + p2) / 2, p2)  # a core each / three processes on two cores
    out += [f"On two idle cores: one worker about {raw_ms / one:.2f} x symusic raw (its busiest process, "
            f"{one:.3f} ms per file, sets the pace); two workers about {raw_ms / two:.2f} x (their "
            f"{w2 + p2:.3f} ms of CPU per file over two cores): two workers / one worker about {one / two:.2f} x",
            f"Two workers / one worker cannot pass 2 x {one:.3f} / {w2 + p2:.3f} = {2 * one / (w2 + p2):.2f} x "
            f"(CPU per file of one worker, of a two-worker run); one worker's parent: {p1 / one:.0%} of a core"]
    return out


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


def ratio_lines(rates: dict[str, dict]) -> list[str]:
    """The targets side by side: files/s of ingest over raw symusic, one and two processes."""
    raw, raw2 = rates["symusic (raw)"]["files_s"], rates["symusic (raw, 2 procs)"]["files_s"]
    one, two = rates["tunesmith ingest 1 worker"]["files_s"], rates["tunesmith ingest 2 workers"]["files_s"]
    lines = [f"{'':<22}{'/ symusic 1 proc':>18}{'/ symusic 2 procs':>19}",
             f"{'ingest, 1 worker':<22}{one / raw:>17.2f}x{one / raw2:>18.2f}x   (target >= 0.5 x symusic 1 proc)",
             f"{'ingest, 2 workers':<22}{two / raw:>17.2f}x{two / raw2:>18.2f}x   (two workers / one worker: "
             f"{two / one:.2f} x, target >= 1.7 on two idle cores; symusic 2 procs / 1 proc: {raw2 / raw:.2f} x)"]
    if "tunesmith ingest (CLI)" in rates:
        cli, one_notes = rates["tunesmith ingest (CLI)"], rates["tunesmith ingest 1 worker"]["notes_s"]
        pretty, m21 = rates["pretty_midi"], rates["music21"]
        lines += [f"ingest (CLI, 1 worker) / symusic raw : {cli['files_s'] / raw:5.2f} x files/s",
                  f"ingest 1 worker / pretty_midi : {one / pretty['files_s']:5.1f} x files/s (target >= 30)",
                  f"ingest 1 worker / music21     : {one_notes / m21['notes_s']:5.0f} x notes/s"]
    return lines


if __name__ == "__main__":
    main()
