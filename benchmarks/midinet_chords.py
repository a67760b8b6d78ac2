"""Does chord conditioning help? The share of MidiNet's melody notes that are chord tones (root, third,
fifth of the bar's chord) when it is given `--chords` and when it is not, measured against the same
progression, side by side for each checkpoint (issue 11: target at least 15 points more with chords).

Usage: python benchmarks/midinet_chords.py [CKPT ...] [--chords "C G Am F"] [--n 32] [--bars 8]
"""

from __future__ import annotations

import argparse

import numpy as np

from tunesmith.generation.generate import GenerateRequest, generate_scores
from tunesmith.models.checkpoint import load_model
from tunesmith.representations.bars import BarsRepresentation, chord_vector


def triad(name: str) -> np.ndarray:
    """Pitch classes of the chord's root, third and fifth."""
    vector = chord_vector(name)
    root, third = int(vector[:12].argmax()), 3 if vector[12] > 0 else 4
    return np.array([root, (root + third) % 12, (root + 7) % 12])


def chord_tone_share(scores: list, names: list[str]) -> float:
    """Sounding steps whose pitch class is in the triad of the bar's chord (chords cycle), over all."""
    rep, hits, total = BarsRepresentation(), 0, 0
    for score in scores:
        for i, bar in enumerate(rep.encode(score)):
            pitches = bar[bar.any(-1)].argmax(-1) % 12
            hits, total = hits + int(np.isin(pitches, triad(names[i % len(names)])).sum()), total + len(pitches)
    return hits / max(total, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="*", default=["midinet"])
    parser.add_argument("--chords", default="C G Am F")
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--bars", type=int, default=8)
    args = parser.parse_args()
    names = args.chords.split()
    print("| checkpoint | chord tones with --chords | without | difference (points) |\n|---|---|---|---|")
    for checkpoint in args.checkpoints:
        loaded = load_model(checkpoint)
        with_chords = generate_scores(loaded, GenerateRequest(n=args.n, bars=args.bars, chords=names))
        without = generate_scores(loaded, GenerateRequest(n=args.n, bars=args.bars))
        a, b = chord_tone_share(with_chords, names), chord_tone_share(without, names)
        print(f"| {checkpoint} | {a:.3f} | {b:.3f} | {100 * (a - b):+.1f} |")


if __name__ == "__main__":
    main()
