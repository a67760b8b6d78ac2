"""Quality report of trained token models (issue 3): held-out NLL per token next to
unigram / bigram baselines on the same split, and degeneracy of generated vs real pieces.

Usage: python benchmarks/token_models.py CHECKPOINT [CHECKPOINT ...] [--n 16] [--bars 16] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tunesmith.generation.generate import GenerateRequest, generate_scores
from tunesmith.models.checkpoint import load_model
from tunesmith.models.distributions import SamplingConfig
from tunesmith.scoring.token_report import token_model_report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--bars", type=int, default=16)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    reports = {}
    print("| model | valid NLL (nats/token) | unigram NLL | bigram NLL | "
          "pc entropy gen / real | distinct pitches gen / real | longest repeat gen / real |")
    print("|---|---|---|---|---|---|---|")
    for ckpt in args.checkpoints:
        loaded = load_model(ckpt)
        request = GenerateRequest(n=args.n, bars=args.bars, sampling=SamplingConfig(temperature=args.temperature))
        r = token_model_report(loaded, generate_scores(loaded, request), args.bars)
        reports[ckpt] = r
        g, real = r["generated"], r["real_valid"]
        print(f"| {ckpt} | {r['valid']['nll']:.3f} | "
              f"{r['baselines']['unigram_nll']:.3f} | {r['baselines']['bigram_nll']:.3f} | "
              f"{g['pc_entropy_bits']:.2f} / {real['pc_entropy_bits']:.2f} | "
              f"{g['distinct_pitches']:.1f} / {real['distinct_pitches']:.1f} | "
              f"{g['longest_repeat_run']:.1f} / {real['longest_repeat_run']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2))


if __name__ == "__main__":
    main()
