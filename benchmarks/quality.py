"""Music quality of the shipped models, measured like against like (issue 11), side by side with the
real-vs-real ceiling and the random-notes floor of the same reference.

For each checkpoint: generate N pieces of B bars (default 32 x 16, seed 0, the checkpoint's own sampling
defaults, else the family's, unless --temperature / --top-p are given), reduce the reference corpus to what the model's
representation holds (`evaluation.provenance.reference_in_model_terms`) and cut every reference piece
to the same B bars, then report mean overlapping area (OA) over the features that separate real from
random on this reference (a feature whose random-vs-real OA is within 0.05 of real-vs-real says nothing
and is left out of the headline; all features are in the JSON), the weakest separating feature, PCH KL,
pieces shorter than asked, and memorization flags against the reference.

Usage: python benchmarks/quality.py [CKPT ...] [--n 32] [--bars 16] [--reference CORPUS] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tunesmith.core.score import bar_starts, bars_after
from tunesmith.evaluation.calibration import calibrate
from tunesmith.evaluation.compare import compare_sets
from tunesmith.evaluation.memorization import build_index, check_set
from tunesmith.evaluation.provenance import generated_in_model_terms, reference_in_model_terms
from tunesmith.evaluation.runs import PieceSet, load_set
from tunesmith.generation.generate import GenerateRequest, generate_scores
from tunesmith.generation.outputs import provenance
from tunesmith.io.atomic import write_atomic
from tunesmith.models.checkpoint import load_model
from tunesmith.models.distributions import SamplingConfig

SHIPPED = ("lstm-bach", "transformer-bach", "jsb-best", "midinet", "bach-vae", "lstm-bach-form", "conv-vae-bach")
READ_FACTOR = 10  # read up to this many times --limit pieces, to find --limit pieces that are long enough
FALLBACK = "bach"  # when a checkpoint's training source is not on this machine (jsb-best: a JSB file)


def training_source(loaded) -> str:
    """The corpus or file the checkpoint was trained on, when this machine has it; else `FALLBACK`."""
    from tunesmith.corpora import CORPORA

    source = str(loaded.checkpoint.get("provenance", {}).get("source", FALLBACK))
    return source if source in CORPORA or Path(source).exists() else FALLBACK


def measure(name: str, args: argparse.Namespace) -> dict:
    loaded = load_model(name)
    corpus = args.reference or training_source(loaded)
    request = GenerateRequest(n=args.n, bars=args.bars, seed=args.seed,
                              sampling=SamplingConfig(temperature=args.temperature, top_p=args.top_p))
    record = provenance(loaded, request)
    reference = reference_in_model_terms(load_set(corpus, limit=READ_FACTOR * args.limit), record)
    # like against like in length too: only reference pieces of at least B bars, cut to B bars
    # (Essen's median 4/4 song has 10 bars; against 8-bar songs a 16-bar piece has "too many" notes)
    long_enough = [i for i, s in enumerate(reference.scores) if len(bar_starts(s)) >= args.bars][:args.limit]
    if len(long_enough) < 4:
        raise SystemExit(f"{corpus}: only {len(long_enough)} pieces have {args.bars} bars; use --bars")
    cut = [bars_after(reference.scores[i], args.bars) for i in long_enough]
    ids = [reference.ids[i] for i in long_enough]
    calibration = calibrate(cut, record, seed=args.seed)
    started = time.perf_counter()
    generated = generate_scores(loaded, request)
    seconds = time.perf_counter() - started
    generated = generated_in_model_terms(PieceSet("generated", [], generated), record).scores
    comparison = compare_sets(cut, generated)
    flags = check_set(build_index(cut, ids), generated, [str(i) for i in range(len(generated))])
    head = calibration.headline(comparison)
    described = f"{corpus} as {loaded.representation.name}, {len(cut)} pieces of {args.bars}+ bars cut to {args.bars}"
    return {
        "model": name, "reference": described, "oa": head.oa, "weakest": head.weakest, "weakest_oa": head.weakest_oa,
        "ceiling": calibration.headline(calibration.ceiling).oa, "floor": calibration.headline(calibration.floor).oa,
        "oa_all_features": comparison.mean_overlap_area, "pch_kl": comparison.pitch_class_kl["whole"],
        "shorter_than_asked": sum(len(bar_starts(s)) < args.bars for s in generated),
        "copies": sum(m.copied for m in flags), "pieces": len(generated), "seconds": round(seconds, 1),
        "separating_features": sorted(calibration.separating), "features": comparison.summary()["features"],
    }


def table(rows: list[dict]) -> str:
    head = ("| model | reference | OA (separating) | weakest feature | real-vs-real | random | OA (all) | "
            "PCH KL | shorter | copies |\n|---|---|---|---|---|---|---|---|---|---|\n")
    return head + "".join(
        f"| {r['model']} | {r['reference']} | {r['oa']:.3f} | {r['weakest']} ({r['weakest_oa']:.2f}) | "
        f"{r['ceiling']:.3f} | {r['floor']:.3f} | {r['oa_all_features']:.3f} | {r['pch_kl']:.3f} | "
        f"{r['shorter_than_asked']}/{r['pieces']} | {r['copies']} |\n" for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="*", default=list(SHIPPED))
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--bars", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--top-p", type=float)
    parser.add_argument("--reference", help="corpus or folder for every checkpoint (default: its own corpus)")
    parser.add_argument("--limit", type=int, default=200, help="reference pieces (of at least --bars bars) at most")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    rows = [measure(name, args) for name in args.checkpoints]
    text = table(rows)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    sampling = "each checkpoint's own sampling defaults" if args.temperature is None and args.top_p is None \
        else f"temperature={args.temperature}, top_p={args.top_p}"
    settings = f"n={args.n}, bars={args.bars}, seed={args.seed}, {sampling}"
    title = "# Music quality of the shipped models"
    report = f"{title}\n\n`python benchmarks/quality.py` ({settings})\n\n{text}"
    write_atomic(args.out / "quality.md", report.encode())
    write_atomic(args.out / "quality.json", (json.dumps(rows, indent=1, default=float) + "\n").encode())


if __name__ == "__main__":
    main()
