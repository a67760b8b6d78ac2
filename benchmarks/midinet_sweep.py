"""Choose MidiNet's sampling settings: `benchmarks/quality.py`'s measurement for several checkpoints x
temperatures, reading and calibrating the reference once (on this shared CPU one quality.py run takes
about 20 minutes, most of it reading Essen).

Usage: python benchmarks/midinet_sweep.py CKPT[:key=value,...] ... [--temperatures 0.6 0.7 ...] [--seeds 1]

`CKPT:spread_scale=1.3,redraws=2` measures the checkpoint with those model-config values (generation
settings such as `spread_scale` and `redraws`), written to a temporary copy of it. `--cache FILE`
keeps the read reference in a pickle so a second sweep skips reading Essen.

Choose on --seed 1; the
reported figures are `python benchmarks/quality.py CKPT` (seed 0). Prints one row per setting: OA over
the separating features, the weakest feature, PCH KL, the mean pitch range in semitones (generated /
reference), the pitch-class transition matrix's OA, pieces shorter than asked and copies.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
from pathlib import Path

from tunesmith.models.checkpoint import load_checkpoint, save_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
import quality  # noqa: E402  (benchmarks/quality.py: the measurement itself)


def variant(spec: str, folder: Path) -> str:
    """`CKPT` as is, or `CKPT:key=value,...` written to `folder` with those model-config values."""
    if ":" not in spec:
        return spec
    name, settings = spec.split(":", 1)
    payload = load_checkpoint(name)
    config = dict(payload["model"]["config"])
    for item in settings.split(","):
        key, value = item.split("=")
        booleans = {"true": True, "false": False}
        config[key] = booleans[value] if value in booleans else int(value) if value.isdigit() else float(value)
    payload["model"] = {**payload["model"], "config": config}
    path = folder / f"variant{len(list(folder.iterdir()))}.ckpt"
    save_checkpoint({k: v for k, v in payload.items() if k != "format"}, path)
    return str(path)


def cached_load_set(load_set, cache: Path | None):
    """`load_set` once per arguments, kept in the pickle `cache` across runs when given."""
    store = pickle.loads(cache.read_bytes()) if cache and cache.exists() else {}

    def cached(corpus, limit=None):
        if (corpus, limit) not in store:
            store[(corpus, limit)] = load_set(corpus, limit=limit)
            if cache:
                cache.write_bytes(pickle.dumps(store))
        return store[(corpus, limit)]

    return cached


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


def _mean(value) -> str:
    """A feature's mean for printing: a number, or '-' for a histogram or matrix."""
    return f"{value:.2f}" if isinstance(value, int | float) else "-"


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
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--features", action="store_true", help="also print each separating feature's OA")
    parser.add_argument("--cache", type=Path, help="pickle file for the read reference")
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--bars", type=int, default=16)
    parser.add_argument("--limit", type=int, default=200)
    args = parser.parse_args()
    quality.load_set = cached_load_set(quality.load_set, args.cache)  # read the reference once
    quality.calibrate = calibrate_once(quality.calibrate)
    folder = Path(tempfile.mkdtemp(prefix="midinet-sweep-"))
    print("| checkpoint | seed | temperature | OA (separating) | weakest | PCH KL | pitch range gen / ref | "
          "PC transitions OA | shorter | copies |\n|---|---|---|---|---|---|---|---|---|---|")
    for seed in args.seeds:
        for spec in args.checkpoints:
            path = variant(spec, folder)
            for temperature in args.temperatures:
                settings = argparse.Namespace(n=args.n, bars=args.bars, seed=seed, temperature=temperature,
                                              top_p=None, reference=None, limit=args.limit)
                row = quality.measure(path, settings)
                print(line(f"{spec} | {seed}", temperature, row), flush=True)
                if args.features:
                    print("  " + ", ".join(f"{f}: {feature(row, f)['overlap_area']:.2f} ("
                                           f"{_mean(feature(row, f)['generated_mean'])} vs "
                                           f"{_mean(feature(row, f)['reference_mean'])})"
                                           for f in row["separating_features"]), flush=True)


if __name__ == "__main__":
    main()
