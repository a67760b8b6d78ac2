"""Speed of the memorization check: index a synthetic training set, then check generated pieces against it.

Training pieces are random-walk melodies (a quarter of them four-part, like chorales) of 100-400 notes;
the generated set holds fresh pieces and transposed copies, which the check must flag. Prints the index
build time, the time per checked piece, and the copies found.
Usage: python benchmarks/memorization.py [--train 2000] [--generated 200] [--ngram 8]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tunesmith.core.score import make_track, new_score, transpose
from tunesmith.evaluation.memorization import build_index, check_set, summarize

TPQ = 480


def synthetic_piece(rng: np.random.Generator):
    """A random-walk melody (steps of -3..3 semitones, 1-4 8ths) on an 8th grid; a quarter of the time
    four such voices, one track each."""
    score = new_score(tpq=TPQ)
    n_tracks = 4 if rng.random() < 0.25 else 1
    n = int(rng.integers(100, 400)) // n_tracks
    for voice in range(n_tracks):
        walk = np.cumsum(rng.integers(-3, 4, n))
        pitch = 72 - 12 * voice + 12 - np.abs((walk + 12) % 48 - 24)  # reflected at +-12 semitones
        start = np.cumsum(rng.integers(1, 5, n)) * (TPQ // 2)
        score.tracks.append(make_track(pitch, start, [TPQ // 2] * n))
    return score


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--generated", type=int, default=200)
    parser.add_argument("--ngram", type=int, default=8)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    train = [synthetic_piece(rng) for _ in range(args.train)]
    copies = [transpose(train[i], int(rng.integers(-6, 7))) for i in range(0, args.generated // 10)]
    generated = copies + [synthetic_piece(rng) for _ in range(args.generated - len(copies))]

    start = time.perf_counter()
    index = build_index(train, n=args.ngram)
    built = time.perf_counter() - start
    start = time.perf_counter()
    summary = summarize(check_set(index, generated))
    checked = time.perf_counter() - start
    notes = sum(len(t.notes) for s in train for t in s.tracks)
    print(f"index: {args.train} training pieces, {notes} notes, {len(index)} n-grams, built in {built:.2f} s")
    per_piece_ms = 1000 * checked / args.generated
    print(f"check: {args.generated} generated pieces in {checked:.2f} s ({per_piece_ms:.1f} ms per piece); "
          f"{summary['copies']} flagged, {len(copies)} planted copies")


if __name__ == "__main__":
    main()
