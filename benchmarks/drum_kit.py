"""The drum kit of band generators against real music, side by side: prior samples of `--bars` bars against
real excerpts of as many bars (from bar 4) of pieces the first checkpoint held out (its own valid split,
from `--offset`, as `benchmarks/multitrack.py` picks them).

Per set, over the pieces with drums:
- kit pieces per bar: distinct drum pitches hit in a bar, mean over the bars with drums;
- top-4 share: the share of a piece's drum hits on its 4 most used drum pitches, mean over pieces (real
  parts keep to kick, snare and hats; a part spread over rare pieces scores low);
- drum hits per bar: drum onsets per bar with drums (the count rule's output, which the kit rule of
  `models/band_decoding.py` should leave about as it was);
- distinct drum pitches per piece;
- hits on 8th-note steps: the share of drum hits that fall on a bar's 8th-note grid (beats and off-beats), mean
  over pieces (real grooves keep most hits there; a kit piece running in 16ths puts half of its off it);
- pieces with a kick (GM 35, 36) and a snare (38, 40);
- drum overlap area: the mean Yang & Lerch overlapping area of the drum features against the real set
  (`evaluation.multitrack_metrics.group_overlap`), beside the real-vs-real ceiling (even vs odd pieces);
  those features (empty-bar rate, drum-pattern rate) do not look at which drum is hit, so a kit rule that
  only moves hits between pitches leaves it as it was;
- the checkpoint's kit tables (`DecodingStats.kit`: per window, per two consecutive windows), "-" without.

Usage: python benchmarks/drum_kit.py [CKPT ...] [--data DIR] [--n 24] [--offset 40] [--bars 16] [--seed 0]
       [--out benchmarks/results/drum_kit.md]
(CKPT: a .ckpt, run folder or shipped name, default band-5; DIR: the data it was trained on.)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from tunesmith.core.errors import UserError
from tunesmith.core.score import note_table
from tunesmith.evaluation.multitrack_metrics import group_overlap, overlap_ceiling
from tunesmith.evaluation.timeline import bar_edges
from tunesmith.generation.band import band_representation
from tunesmith.io.atomic import write_atomic
from tunesmith.models.checkpoint import load_model

sys.path.insert(0, str(Path(__file__).parent))
from multitrack import excerpt, held_out, prior_samples  # noqa: E402  (the band benchmark's pieces and samples)
from script_exit import refuse  # noqa: E402

TOP = 4  # kit pieces in the top-k share
ROWS = (("kit pieces / bar", "kit_per_bar", "%.2f"), (f"top-{TOP} share", "top_share", "%.3f"),
        ("drum hits / bar", "hits_per_bar", "%.2f"), ("drum pitches / piece", "pitches_per_piece", "%.1f"),
        ("hits on 8th-note steps", "on_eighths", "%.3f"), ("pieces with kick and snare", "kick_and_snare", "%d"),
        ("drum overlap area", "overlap", "%.3f"), ("pieces with drums", "pieces", "%d"), ("kit table", "kit", "%s"))


def drum_figures(scores: list) -> dict[str, float]:
    """The per-set drum figures of the module docstring (NaN where no piece has drums)."""
    per_bar, hits, top, distinct, eighths, backbeat = [], [], [], [], [], 0
    for score in scores:
        table = note_table(score)
        drums = table["is_drum"]
        if not drums.any():
            continue
        start = table["start"][drums]
        edges = bar_edges(score, int(start.max()) + 1)
        pitch, bar = table["pitch"][drums], np.searchsorted(edges, start, "right")
        eighths.append(float(np.mean((start - edges[bar - 1]) % max(score.ticks_per_quarter // 2, 1) == 0)))
        backbeat += bool(np.isin(pitch, (35, 36)).any() and np.isin(pitch, (38, 40)).any())
        for b in np.unique(bar):
            per_bar.append(len(np.unique(pitch[bar == b])))
            hits.append(int((bar == b).sum()))
        counts = np.sort(np.unique(pitch, return_counts=True)[1])[::-1]
        top.append(counts[:TOP].sum() / counts.sum())
        distinct.append(len(counts))
    return {"kit_per_bar": _mean(per_bar), "top_share": _mean(top), "hits_per_bar": _mean(hits),
            "pitches_per_piece": _mean(distinct), "on_eighths": _mean(eighths), "kick_and_snare": backbeat,
            "pieces": len(top)}


def _mean(values: list) -> float:
    return float(np.mean(values)) if values else float("nan")


def report(columns: dict[str, dict], args: argparse.Namespace, seconds: float) -> str:
    """The markdown page: one row per figure, one column per set."""
    names = list(columns)
    lines = ["# Drum kit: real vs generated", "",
             f"`python benchmarks/drum_kit.py {' '.join(args.checkpoints)} --data {args.data} --n {args.n} "
             f"--offset {args.offset} --bars {args.bars} --seed {args.seed}` ({seconds:.0f} s). Real: {args.bars}-bar "
             f"excerpts (from bar 4) of held-out pieces {args.offset}-{args.offset + args.n - 1}; generated: "
             f"{args.n} prior samples of {args.bars} bars per checkpoint. See the script's docstring for the figures.",
             "", "| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label, key, fmt in ROWS:
        lines.append(f"| {label} | " + " | ".join(_cell(columns[c].get(key), fmt) for c in names) + " |")
    return "\n".join(lines) + "\n"


def _label(checkpoint: str) -> str:
    """A column name: the file's stem for a path (band-5-kit), the shipped name as given."""
    return Path(checkpoint).name.removesuffix(".ckpt")


def _cell(value, fmt: str) -> str:
    return "-" if value is None or (isinstance(value, float) and not np.isfinite(value)) else fmt % value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="*", default=["band-5"])
    parser.add_argument("--data", default="../shared/data/multitrack/vgm")
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--offset", type=int, default=40)
    parser.add_argument("--bars", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "drum_kit.md")
    args = parser.parse_args()
    if args.n < 2 or args.bars < 1 or args.offset < 0:
        refuse("--n must be at least 2 (the real-vs-real ceiling splits the real set), --bars at least 1, "
                "--offset not negative")
    torch.set_num_threads(1)
    began = time.time()
    try:
        models = {c: load_model(c) for c in args.checkpoints}
        for loaded in models.values():
            if loaded.checkpoint["model"]["name"] != "band":
                raise UserError(f"{loaded.path} is not a band checkpoint (drum kits are measured on band models)")
        real_pieces = held_out(models[args.checkpoints[0]], args.data, args.n, "valid", args.offset)
        if len(real_pieces) < 2:
            raise UserError(f"{args.data} holds fewer than 2 held-out pieces from {args.offset} on")
        rep = band_representation(models[args.checkpoints[0]].model)
        real = [excerpt(rep.canonical(s), 4, args.bars) for s in real_pieces]
        columns = {"real": {**drum_figures(real), "overlap": overlap_ceiling(real).get("drums")}}
        for name, loaded in models.items():
            pieces = prior_samples(loaded.model, args.n, args.bars, args.seed)
            notes = loaded.model.notes
            kit = ", ".join(f"{k:.2f}" for k in notes.kit.tolist()) if notes.drum_kit else None
            columns[_label(name)] = {**drum_figures(pieces), "overlap": group_overlap(real, pieces).get("drums"),
                                     "kit": kit}
    except (UserError, FileNotFoundError) as error:
        refuse(str(error))
    page = report(columns, args, time.time() - began)
    print(page, end="")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out, page.encode())
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
