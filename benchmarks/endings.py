"""Form (issue 11, item 2): where token models put the end of a piece, and how generated pieces end.

For each token checkpoint (REMI `events` models: lstm-bach, lstm-bach-form, transformer-bach by default):

1. End-token profile on the held-out pieces of the checkpoint's own split (`scoring.endings`): mean
   P(EOS) at the true end, after notes that end on a bar line, after other notes, and the percentile of
   the true end among all positions of its piece (1.0: the model's most confident end is the real one);
   and P(EOS) at each bar line against the bars still to come (a model that knows where the piece ends
   puts its end-token mass at the true end, not at the cadences of earlier phrases). A countdown model (bar
   countdown tokens, `representations/countdown.py`) reads the true bars left, as in generation.
2. Endings (`evaluation.form`): the fraction of pieces that close with a cadence (tonic in the bass,
   tonic chord, held a beat), for all the real held-out pieces (whole: the ceiling, 0.72 on lstm-bach's
   40; it was measured on the first --pieces only, 0.80 on 10), the same pieces cut after B bars (a cut
   is not an ending: this column shows how often a bar line B bars in happens to close a phrase),
   generated pieces of exactly B bars (`--ending bars`, the default) and generated pieces that end
   where the model draws its end token at a bar line at least B bars in (`--ending model`); with
   `--endings ... best`, also exact-bar pieces each kept as the best of `--candidates` draws: the most
   cadence tests passed on its own notes, then the model's P(EOS) where it ended (countdown models only:
   `generation/best_ending.py`, a decoding option that selects on the tests counted here, not learned
   form).

Usage: python benchmarks/endings.py [CKPT | LABEL=CKPT ...] [--n 32] [--bars 8] [--pieces 20]
       [--endings bars model [best]] [--candidates 8] [--out benchmarks/results]
Writes benchmarks/results/endings.md, endings.json and endings.png (P(EOS) against bars before the end).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from tunesmith.core.score import bars_after
from tunesmith.data.splits import split_of
from tunesmith.evaluation.form import ending_rates
from tunesmith.evaluation.runs import load_set
from tunesmith.generation.generate import GenerateRequest, generate_scores, with_checkpoint_defaults
from tunesmith.io.atomic import write_atomic
from tunesmith.models.checkpoint import load_model
from tunesmith.scoring.endings import ending_profile

DEFAULT = ("lstm-bach", "lstm-bach-form", "transformer-bach")
FAR = 8  # bars before the end shown one by one; the rest pooled


def held_out(loaded, limit: int | None = None) -> tuple[list, list[np.ndarray]]:
    """(scores, token arrays) of the checkpoint's validation pieces (the first `limit`; None: all), as
    its representation holds them."""
    provenance = loaded.checkpoint.get("provenance", {})
    pieces = load_set(provenance.get("source", "bach"))
    valid = float(provenance.get("valid_fraction", 0.1))
    scores, arrays = [], []
    for piece_id, score in zip(pieces.ids, pieces.scores, strict=True):
        if split_of(piece_id, valid, float(provenance.get("test_fraction", 0.0))) == "valid":
            ids = loaded.representation.encode(score)
            if len(ids):
                scores.append(loaded.representation.decode(ids))
                arrays.append(ids)
    return scores[:limit], arrays[:limit]  # [:None] is everything


def remi_bar_line_marks(rep) -> callable:
    """ids -> (len,) int8: 1 after a Duration token whose note ends on a bar line, 0 after other
    Duration tokens, -1 elsewhere (REMI without time-signature tokens: 4/4 bars)."""
    vocab = rep._vocab
    per_bar = 4 * rep.config.steps_per_quarter

    def marks(ids: np.ndarray) -> np.ndarray:
        out, position = np.full(len(ids), -1, np.int8), 0
        for i, token in enumerate(vocab[int(t)] for t in ids):
            kind, _, value = token.partition("_")
            if kind == "Position":
                position = int(value)
            elif kind == "Bar":
                position = 0
            elif kind == "Duration":
                beats, steps, resolution = (int(v) for v in value.split("."))
                out[i] = int((position + beats * resolution + steps) % per_bar == 0)
        return out

    return marks


def remi_bars_left(rep) -> callable:
    """ids -> (len,) int: at each bar line, after the token before it, the bars still to come (the Bar
    tokens from there on); 0 after the last token (the true end); -1 elsewhere."""
    is_bar = np.array([token.startswith("Bar_") for token in rep.vocab])

    def marks(ids: np.ndarray) -> np.ndarray:
        bars = is_bar[np.asarray(ids, np.int64)]
        to_come = bars[::-1].cumsum()[::-1]  # Bar tokens at or after each position
        out = np.full(len(bars), -1)
        out[:-1] = np.where(bars[1:], to_come[1:], -1)
        out[-1] = 0
        return out

    return marks


def measure(name: str, args: argparse.Namespace) -> dict:
    """One checkpoint's row; `name` is a checkpoint, or LABEL=CHECKPOINT to report it as LABEL."""
    name, _, path = name.partition("=")
    loaded = load_model(path or name)
    scores, arrays = held_out(loaded)
    rep = loaded.representation
    profile = ending_profile(loaded, arrays[:args.pieces], remi_bar_line_marks(rep), remi_bars_left(rep), FAR)
    row = {"model": name, "profile": profile, "real_pieces": len(scores), "real_whole": ending_rates(scores),
           "real_cut": ending_rates([bars_after(s, args.bars) for s in scores])}
    for ending in args.endings:
        if ending == "best" and getattr(rep, "countdown", None) is None:
            row["generated_best"] = {"cadence": float("nan")}  # best-of draws need countdown generation
            continue
        request = with_checkpoint_defaults(loaded, GenerateRequest(
            n=args.n, bars=args.bars, seed=args.seed, ending="bars" if ending == "best" else ending))
        request.candidates = args.candidates if ending == "best" else 1
        row[f"generated_{ending}"] = ending_rates(generate_scores(loaded, request))
    return row


def table(rows: list[dict], args: argparse.Namespace) -> str:
    lines = ["| model | P(EOS) at true end | after notes ending on a bar line | after other notes | "
             "true-end percentile |", "|---|---|---|---|---|"]
    for r in rows:
        p = r["profile"]
        lines.append(f"| {r['model']} ({p['pieces']} held-out pieces) | {p['p_eos_at_true_end']:.3f} | "
                     f"{p['p_eos_note_ends_on_bar_line']:.4f} | {p['p_eos_other_note_ends']:.4f} | "
                     f"{p['true_end_percentile']:.3f} |")
    sets = ["real_whole", "real_cut"] + [f"generated_{e}" for e in args.endings]
    lines += ["", "Fraction of pieces ending with a cadence (tonic bass, tonic chord, held a beat; real: all "
              f"{rows[0]['real_pieces']} held-out pieces of the first model's split):", "",
              "| model | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
    lines += [f"| {r['model']} | " + " | ".join(f"{r[s]['cadence']:.2f}" for s in sets) + " |" for r in rows]
    heads = ["true end"] + [f"{d} to come" for d in range(1, FAR)] + [f"{FAR}+ to come"]
    lines += ["", "Mean P(EOS) at the piece's bar lines (after the last token before each), by bars still to "
              "come (held-out pieces; a model that knows where the piece ends puts its mass at the true end):",
              "", "| model | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads)]
    lines += [f"| {r['model']} | " + " | ".join(f"{v:.4f}" for v in r["profile"]["p_eos_by_bars_left"]) + " |"
              for r in rows]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    """P(EOS) at bar lines against the bars still to come, one line per model (log scale), to `path`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4))
    axes = figure.add_subplot()
    for r in rows:
        axes.plot(range(FAR + 1), r["profile"]["p_eos_by_bars_left"], marker="o", label=r["model"])
    axes.set_yscale("log")
    axes.set_xticks(range(FAR + 1), ["end"] + [str(d) for d in range(1, FAR)] + [f"{FAR}+"])
    axes.set_xlabel("bars still to come at the bar line")
    axes.set_ylabel("mean P(EOS) at the bar line")
    axes.set_title("Where token models expect the end (held-out chorales)")
    axes.legend()
    figure.tight_layout()
    FigureCanvasAgg(figure)
    write_atomic(path, lambda out: figure.savefig(out, format="png", dpi=100))


def _extra(args: argparse.Namespace) -> str:
    """The non-default options of the command line, as written in the report's header."""
    text = f" --endings {' '.join(args.endings)}" if args.endings != ["bars", "model"] else ""
    return text + (f" --candidates {args.candidates}" if "best" in args.endings else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="*", default=list(DEFAULT))
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--bars", type=int, default=8)
    parser.add_argument("--pieces", type=int, default=20, help="held-out pieces for the profile")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--endings", nargs="+", default=["bars", "model"], choices=["bars", "model", "best"])
    parser.add_argument("--candidates", type=int, default=8, help="draws per piece for --endings best")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    rows = [measure(name, args) for name in args.checkpoints]
    text = (f"# Endings\n\n`python benchmarks/endings.py {' '.join(args.checkpoints)} --n {args.n} --bars "
            f"{args.bars} --pieces {args.pieces}{_extra(args)}` (seed {args.seed})\n\n" + table(rows, args))
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out / "endings.md", text.encode())
    write_atomic(args.out / "endings.json", (json.dumps(rows, indent=1) + "\n").encode())
    plot(rows, args.out / "endings.png")


if __name__ == "__main__":
    main()
