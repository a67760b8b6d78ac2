"""Peak resident memory of training vs collection size: in-memory data against streaming (`data.streaming`).

Builds synthetic collections from the bundled Bach chorales (each copy transposed by -5..+6 semitones,
time-stretched by a tick-resolution change, and made unique by a tempo nudge), written as MIDI files and
ingested (`tunesmith ingest`), then trains a small LSTM for a few steps from each collection in a fresh
process per (size, path) and reads that process's peak RSS (`ru_maxrss`). Both paths are measured in this
one run, side by side. Target: streaming's peak RSS below 2 GiB and flat (within 10 %) as the collection
grows 10x. Usage: python benchmarks/scale.py [--sizes 500 5000] [--steps 20] [--workdir DIR]
(the issue's sizes are 5000 50000: about 3 GB of MIDI and tens of minutes of ingest on a 2-core box).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "scale.md"
SHIFTS, STRETCHES = (0, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6), (1.0, 0.75, 1.5, 2.0)


def build_collection(folder: Path, size: int) -> None:
    """`size` distinct MIDI files in `folder` made from the Bach chorales."""
    from tunesmith.core.score import transpose
    from tunesmith.corpora import load_corpus

    folder.mkdir(parents=True, exist_ok=True)
    pieces = [score for _, score in load_corpus("bach")]
    for n in range(size):
        score, k = pieces[n % len(pieces)], n // len(pieces)
        shift, stretch, copy = SHIFTS[k % len(SHIFTS)], STRETCHES[k // len(SHIFTS) % len(STRETCHES)], k // 48
        out = transpose(score, shift) if shift else score.copy()
        out.ticks_per_quarter = int(score.ticks_per_quarter * stretch)
        for tempo in out.tempos:
            tempo.mspq = tempo.mspq + copy % 997  # unique bytes: ingest keys pieces by their sha256
        out.dump_midi(str(folder / f"{n:06d}.mid"))


def ingest(folder: Path, out: Path) -> float:
    from tunesmith.io.ingest import ingest_folder

    start = time.perf_counter()
    ingest_folder(folder, out, workers=0)
    return time.perf_counter() - start


def child(dataset: str, streaming: bool, steps: int) -> None:
    """Train from `dataset` in this process; print peak RSS (MiB) and timings as JSON."""
    import torch

    from tunesmith.training.config import parse_config
    from tunesmith.training.loop import train

    torch.set_num_threads(1)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    config = parse_config({
        "name": "scale",
        "data": {"source": dataset, "representation": "grid", "window": 64, "valid_fraction": 0.02,
                 "streaming": streaming},
        "model": {"name": "lstm", "config": {"embed_dim": 16, "hidden_size": 32, "num_layers": 1}},
        "optim": {"batch_size": 16},
        "trainer": {"max_steps": steps, "max_epochs": 1, "valid_batches": 2, "progress": False,
                    "checkpoint_every": 10**6, "device": "cpu"},
    })
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as run:
        train(config, Path(run) / "run")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mib": peak, "baseline_mib": baseline, "seconds": time.perf_counter() - start}))


def measure(dataset: Path, streaming: bool, steps: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(dataset), "--steps", str(steps),
                          *(["--streaming"] if streaming else [])], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--child", default=None)
    parser.add_argument("--streaming", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.streaming, args.steps)
        return
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tunesmith-scale-"))
    rows = []
    for size in args.sizes:
        midi, dataset = work / f"midi-{size}", work / f"dataset-{size}"
        if not dataset.exists():
            build_collection(midi, size)
            seconds = ingest(midi, dataset)
            print(f"{size} pieces: ingested in {seconds:.0f} s", flush=True)
        for streaming in (False, True):
            result = measure(dataset, streaming, args.steps)
            rows.append((size, "streaming" if streaming else "in memory", result))
            print(f"{size:>6} pieces  {rows[-1][1]:<10} peak RSS {result['peak_mib']:7.0f} MiB "
                  f"(imports {result['baseline_mib']:.0f} MiB), {result['seconds']:.0f} s", flush=True)
    _report(rows, args)


def _report(rows: list, args: argparse.Namespace) -> None:
    peak = {(size, path): r["peak_mib"] for size, path, r in rows}
    small, large = min(args.sizes), max(args.sizes)
    lines = ["# Peak RSS of training vs collection size", "",
             f"`python benchmarks/scale.py --sizes {' '.join(map(str, args.sizes))} --steps {args.steps}`", "",
             "| pieces | in memory (MiB) | streaming (MiB) |", "|---:|---:|---:|"]
    lines += [f"| {s} | {peak[(s, 'in memory')]:.0f} | {peak[(s, 'streaming')]:.0f} |" for s in args.sizes]
    growth = {p: peak[(large, p)] / peak[(small, p)] for p in ("in memory", "streaming")}
    verdict = "MET" if growth["streaming"] <= 1.1 and peak[(large, "streaming")] < 2048 else "NOT MET"
    lines += ["", f"growth {small} -> {large} pieces: in memory x{growth['in memory']:.2f}, streaming "
              f"x{growth['streaming']:.2f} (target: streaming below 2 GiB and within x1.10): {verdict}", ""]
    print("\n".join(lines[-2:]))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
