"""Music quality (benchmarks/quality.py's measure) of a countdown checkpoint's pieces kept as the best of
M draws (`generation/best_ending.py`: the most cadence tests passed on the draw's own notes, then the
model's own end belief), so that the decoding option's effect on the music is reported beside its effect
on endings (benchmarks/endings.py --endings best).

Usage: python benchmarks/endings_quality.py CKPT [--candidates 8] [--n 32] [--bars 16] [--seed 0]
Prints quality.py's table row; writes nothing (benchmarks/results/quality.* belongs to quality.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import quality  # noqa: E402  (the benchmark next to this file)

from tunesmith.generation.generate import generate_scores, with_checkpoint_defaults  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--bars", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=200)
    args = parser.parse_args()
    if args.candidates < 1:
        print("error: --candidates must be 1 or more", file=sys.stderr)
        raise SystemExit(2)

    def best_of(loaded, request):
        request = with_checkpoint_defaults(loaded, request)
        request.candidates = args.candidates
        return generate_scores(loaded, request)

    quality.generate_scores = best_of
    options = argparse.Namespace(**vars(args), temperature=None, top_p=None, reference=None)
    row = quality.measure(args.checkpoint, options)
    row["model"] = f"{args.checkpoint}, best of {args.candidates}"
    print(quality.table([row]))


if __name__ == "__main__":
    main()
