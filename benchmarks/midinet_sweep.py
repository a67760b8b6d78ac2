"""Choose MidiNet's sampling settings: `benchmarks/quality.py`'s measurement for several checkpoints x
temperatures, reading and calibrating the reference once (on this shared CPU one quality.py run takes
about 20 minutes, most of it reading Essen).

Usage: python benchmarks/midinet_sweep.py CKPT [CKPT ...] [--temperatures 0 0.6 0.7 ...] [--seed 1]

Choose on --seed 1; the
reported figures are `python benchmarks/quality.py CKPT` (seed 0). Prints one row per setting: OA over
the separating features, the weakest feature, PCH KL, the mean pitch range in semitones (generated /
reference), the pitch-class transition matrix's OA, pieces shorter than asked and copies.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import quality  # noqa: E402  (benchmarks/quality.py: the measurement itself)


def calibrate_once(calibrate):
    """`calibrate(cut, record, seed=...)` computed once per (seed, number of reference pieces, the model's
    representation): every checkpoint swept here reads the same reference in the same terms."""
    done: dict = {}

    def cached(cut: list, record: dict, seed: int):
        key = (seed, len(cut), repr(record.get("representation")))
        if key not in done:
            done[key] = calibrate(cut, record, seed=seed)
        return done[key]

    return cached


def feature(row: dict, name: str) -> dict:
    return next(f for f in row["features"] if f["name"] == name)


def line(name: str, temperature: float, row: dict) -> str:
    span = feature(row, "pitch_range")
    return (f"| {name} | {temperature} | {row['oa']:.3f} | {row['weakest']} ({row['weakest_oa']:.2f}) | "
            f"{row['pch_kl']:.3f} | {span['generated_mean']:.1f} / {span['reference_mean']:.1f} | "
            f"{feature(row, 'pitch_class_transition_matrix')['overlap_area']:.2f} | "
            f"{row['shorter_than_asked']}/{row['pieces']} | {row['copies']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.6, 0.7, 0.8])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--bars", type=int, default=16)
    parser.add_argument("--limit", type=int, default=200)
    args = parser.parse_args()
    quality.load_set = functools.lru_cache(maxsize=None)(quality.load_set)  # read the reference once
    quality.calibrate = calibrate_once(quality.calibrate)
    print("| checkpoint | temperature | OA (separating) | weakest | PCH KL | pitch range gen / ref | "
          "PC transitions OA | shorter | copies |\n|---|---|---|---|---|---|---|---|---|")
    for name in args.checkpoints:
        for temperature in args.temperatures:
            settings = argparse.Namespace(n=args.n, bars=args.bars, seed=args.seed, temperature=temperature,
                                          top_p=None, reference=None, limit=args.limit)
            print(line(name, temperature, quality.measure(name, settings)), flush=True)


if __name__ == "__main__":
    main()
