"""The band-5 targets of issue 12, measured on the pieces a band checkpoint held out (its own valid split):

1. latent predictor validation MSE per instrument (the seed: piano 0.029, guitar 0.053, bass 0.049,
   strings 0.026), beside the target latents' variance (MSE / variance: the share left unexplained;
   latents of different models have different scales), a copy-the-last-window baseline, and the MSE in
   the seed's latent scale: the seed's piano latents have an interquartile range of +-0.1 (technical
   notes, section 4.2), so ours are rescaled to the same interquartile range (MSE x (0.1 / half IQR)^2);
2. latent std per instrument over windows where it plays (the seed's drums: 0.006, a collapse);
3. continuations of real primers (4 bars -> 16 new bars), `--repeats` draws per primer (seeds seed ..
   seed + repeats - 1): of the bars where the real continuation has an instrument, the share where the
   generated one has it too (target >= 80 % where the primer has the instrument), pooled over the draws,
   with each draw's figure (one draw of 40 continuations swings by several points: band-5's piano gave
   66-78 % over six seeds) and the
   precision (of the bars it plays in, the share where the real continuation has it: recall alone
   rewards a part that never stops), and the recall split by whether the primer has the part (a
   continuation can follow a part it hears, not foresee one that enters later), beside the figures of
   copying the primer's parts (each part it has plays in every new bar), and how often a part stops or
   enters from one 2-bar window to the next, generated vs real (a part that flickers does both too often);
4. prior samples of 16 bars against real 16-bar excerpts: per-instrument overlapping area and the
   tonal distance's, beside the real-vs-real ceiling (target: within 0.1), and MuseGAN metrics;
5. note onsets per step in each of 16 consecutive 2-bar windows (32 bars, no primer): drift to silence?

Usage: python benchmarks/multitrack.py [CKPT] --data DIR [--pieces 40] [--n 24] [--repeats 4]
       [--out benchmarks/results] [--temperature T] [--piano-temperature F]
       [--gate-odds R] [--prior-gate-odds R] [--gate-draws M] [--decoding threshold|sample]
       [--split train] (training pieces instead of held-out ones: for choosing settings)
       [--offset K] (skip the split's first K pieces: `--offset 40` measures the held-out pieces the default
       run does not, a development set for choosing settings that neither network trained on)
(CKPT: a .ckpt, run folder or shipped name, default band-5; DIR: the data it was trained on.)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from tunesmith.core.constants import MULTITRACK_GROUPS
from tunesmith.core.score import bar_line_after, cut_at, trim
from tunesmith.data.datasets import FrameWindows
from tunesmith.data.sources import load_scores
from tunesmith.data.splits import split_ids
from tunesmith.evaluation.multitrack_metrics import multitrack_report
from tunesmith.evaluation.presence import (
    copy_primer_presence,
    presence_precision,
    presence_recall,
    presence_transitions,
)
from tunesmith.generation.band import band_representation, band_scores, note_density
from tunesmith.generation.generate import GenerateRequest
from tunesmith.io.atomic import write_atomic
from tunesmith.models.band_latents import context_pairs, encode_pieces
from tunesmith.models.checkpoint import load_model
from tunesmith.models.window_ae import roll_planes

SEED_MSE = {"piano": 0.029, "guitar": 0.053, "bass": 0.049, "strings": 0.026, "drums": 6.2e-7}
SEED_STD = {"drums": 0.006}
SEED_IQR_HALF = 0.1  # the seed's piano latents: interquartile range +-0.1


def held_out(loaded, data: str, limit: int, split: str = "valid", offset: int = 0) -> list:
    """The checkpoint's valid pieces (same ids, same hash split) of `data`, at most `limit` after the first
    `offset` (`split` "train": its training pieces instead)."""
    prov = loaded.checkpoint.get("provenance", {})
    pairs = load_scores(data)
    valid = set(split_ids([p for p, _ in pairs], prov.get("valid_fraction", 0.05), prov.get("test_fraction", 0.0))
                [split])
    return [s for p, s in pairs if p in valid][offset : offset + limit]


@torch.no_grad()
def latent_figures(model, rolls: list[np.ndarray]) -> dict:
    """Predictor MSE (predicted mean), copy baseline, target variance and latent std, per group."""
    w = model.config.window
    if model.config.context:
        return context_latent_figures(model, rolls)
    windows = FrameWindows(rolls, 2 * w, w, time_axis=1)
    items = [windows[i] for i in range(len(windows))]
    frames = torch.stack([x["frames"] for x in items])
    full = torch.stack([x["mask"] for x in items]).all(1)
    planes = roll_planes(frames[full])
    z_t = model.codec.encode_groups(planes[:, :, :, :w])
    z_n = model.codec.encode_groups(planes[:, :, :, w:])
    now = planes[:, :, 1, :w].flatten(2).any(-1)  # (pairs, 5): which groups sound in window t
    pred = model.predictors.expected_next(z_t, z_n, now)  # with presence heads: the mixture's mean
    return group_figures(z_t, z_n, pred, planes[:, :, :, :w].flatten(2).any(-1))


@torch.no_grad()
def context_latent_figures(model, rolls: list[np.ndarray]) -> dict:
    """`latent_figures` for context predictors: every whole window pair of each piece with its history."""
    pairs = context_pairs(encode_pieces(model, rolls), model.config.context)
    pred = model.predictors.expected_next(pairs["z_t"], pairs["z_next"], history=pairs["history"])
    now = pairs["history"][:, : len(MULTITRACK_GROUPS) * (model.config.context + 1) : model.config.context + 1] > 0
    return group_figures(pairs["z_t"], pairs["z_next"], pred, now)


def group_figures(z_t, z_n, pred, plays) -> dict:
    """Per group figures of latents (pairs, 5, D) at t and t+1, the predicted means, and `plays` (pairs, 5)
    bool (the group sounds at t)."""
    out = {}
    for g, name in enumerate(MULTITRACK_GROUPS):
        rows = z_t[plays[:, g], g]
        quartiles = torch.quantile(z_n[:, g].flatten(), torch.tensor([0.25, 0.75]))
        mse = float((pred[:, g] - z_n[:, g]).pow(2).mean())
        iqr_half = float(quartiles[1] - quartiles[0]) / 2
        out[name] = {
            "mse": mse, "iqr_half": iqr_half, "seed_scale_mse": mse * (SEED_IQR_HALF / max(iqr_half, 1e-12)) ** 2,
            "copy_mse": float((z_t[:, g] - z_n[:, g]).pow(2).mean()),
            "target_var": float(z_n[:, g].var(0, unbiased=False).mean()),
            "latent_std": float(rows.std(0).mean()) if len(rows) > 1 else float("nan"),
        }
    out["pairs"] = int(len(z_t))
    return out


def excerpt(score, start_bar: int, bars: int):
    """Bars [start_bar, start_bar + bars) of a score, moved to tick 0."""
    begin = bar_line_after(score, start_bar) if start_bar else 0
    return cut_at(trim(score, begin, bar_line_after(score, start_bar + bars)), bar_line_after(score, bars))


def continuations(model, real: list, primer_bars: int, new_bars: int, seed: int) -> tuple[list, list]:
    """(generated, real) pieces of primer_bars + new_bars bars: each real piece's first bars continued."""
    rep, generated, reference = band_representation(model), [], []
    generator = torch.Generator().manual_seed(seed)
    for score in real:
        whole = rep.canonical(score)
        if not rep.encode(excerpt(whole, 0, primer_bars)).any():
            continue
        primer = excerpt(whole, 0, primer_bars)
        request = GenerateRequest(n=1, bars=new_bars, seed=seed)
        generated += band_scores(model, request, primer, 1, generator)
        reference.append(excerpt(whole, 0, primer_bars + new_bars))
    return generated, reference


def presence_figures(draws: list[tuple[list, list]]) -> dict:
    """Presence figures (evaluation/presence.py) of (generated, real) continuations with 4-bar primers, one pair
    of lists per draw: recall pooled, per draw and split by primer, precision, copying the primer, transitions."""
    generated, reference = [s for g, _ in draws for s in g], [s for _, r in draws for s in r]
    real = draws[0][1]  # the same pieces in every draw
    out = {"presence_recall": presence_recall(generated, reference, skip_bars=4),
           "presence_precision": presence_precision(generated, reference, skip_bars=4),
           "presence_recall_per_draw": [presence_recall(g, r, skip_bars=4) for g, r in draws],
           "copy_primer": copy_primer_presence(real, 4),
           "transitions": {"generated": presence_transitions(generated, 4), "real": presence_transitions(real, 4)}}
    for primed in (True, False):
        out[f"presence_recall_primed_{str(primed).lower()}"] = presence_recall(generated, reference, 4, primed)
    return out


def prior_samples(model, n: int, bars: int, seed: int) -> list:
    """`n` pieces of `bars` bars from nothing (band scores), from one generator seeded with `seed`."""
    return band_scores(model, GenerateRequest(n=n, bars=bars, seed=seed), None, n, torch.Generator().manual_seed(seed))


def density_curve(model, n: int, windows: int, seed: int) -> np.ndarray:
    """Mean onsets per step in each window, per group: (windows, 5), over `n` prior samples."""
    from tunesmith.models.base import SamplePlan

    bars = windows * model.config.window // (4 * model.config.steps_per_quarter)
    rolls = model.sample(SamplePlan(n, bars), torch.Generator().manual_seed(seed))
    return np.mean([note_density(r, model.config.window) for r in rolls], axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", default="band-5")
    parser.add_argument("--data", required=True)
    parser.add_argument("--pieces", type=int, default=40)
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=4, help="continuation draws per primer (seeds seed..)")
    parser.add_argument("--temperature", type=float, default=None, help="latent noise scale (default: the model's)")
    parser.add_argument("--piano-temperature", type=float, default=None,
                        help="piano's latent noise scale relative to --temperature (default: the model's)")
    parser.add_argument("--gate-odds", type=float, default=None,
                        help="a gated model's piano odds factor (default: the model's)")
    parser.add_argument("--prior-gate-odds", type=float, default=None,
                        help="a gated model's piano odds factor for prior samples (default: the model's)")
    parser.add_argument("--gate-draws", type=int, default=None,
                        help="a gated model's candidate piano latents per window (default: the model's)")
    parser.add_argument("--decoding", choices=("expected", "threshold", "sample"), default=None,
                        help="how windows become notes (default: the model's)")
    parser.add_argument("--split", choices=("valid", "train"), default="valid",
                        help="the pieces to measure on: held out (default) or training pieces (to choose settings)")
    parser.add_argument("--offset", type=int, default=0, help="skip the split's first K pieces (see usage)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    loaded = load_model(args.checkpoint)
    model, rep = loaded.model, band_representation(loaded.model)
    if args.temperature is not None:
        model.config.temperature = args.temperature
    if args.piano_temperature is not None:
        model.config.piano_temperature = args.piano_temperature
    if args.gate_odds is not None:
        model.config.gate_odds = args.gate_odds
    if args.prior_gate_odds is not None:
        model.config.prior_gate_odds = args.prior_gate_odds
    if args.gate_draws is not None:
        model.config.gate_draws = args.gate_draws
    if args.decoding is not None:
        model.config.decoding = args.decoding
    real = held_out(loaded, args.data, args.pieces, args.split, args.offset)
    if not real:
        parser.error(f"no {args.split} pieces after the first {args.offset}")
    rolls = [rep.encode(s) for s in real]
    result = {"checkpoint": args.checkpoint, "data": args.data, "valid_pieces": len(real), "split": args.split,
              "offset": args.offset,
              "temperature": model.config.temperature, "piano_temperature": model.config.piano_temperature,
              "gate_odds": model.config.gate_odds if model.config.gate else None,
              "prior_gate_odds": model.config.prior_gate_odds if model.config.gate else None,
              "gate_draws": model.config.gate_draws if model.config.gate else None,
              "decoding": model.config.decoding,
              "latents": latent_figures(model, rolls)}
    draws = [continuations(model, real, 4, 16, args.seed + k) for k in range(args.repeats)]
    result.update(presence_figures(draws))
    result["continuations"] = sum(len(g) for g, _ in draws)
    excerpts = [excerpt(rep.canonical(s), 4, 16) for s in real]
    samples = prior_samples(model, args.n, 16, args.seed)
    result["prior"] = multitrack_report(samples, [e for e in excerpts if e.note_num()])
    result["density_per_window"] = density_curve(model, args.n, 16, args.seed).tolist()
    real_density = [note_density(r[:, : 16 * model.config.window], model.config.window) for r in rolls]
    result["real_density"] = np.mean([d.mean(0) for d in real_density if len(d)], axis=0).tolist()
    result["seconds"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out / "multitrack.json", (json.dumps(result, indent=2) + "\n").encode())
    text = report(result)
    write_atomic(args.out / "multitrack.md", text.encode())
    print(text)


def report(r: dict) -> str:
    """The markdown page of the figures."""
    lat, pr, prior = r["latents"], r["presence_recall"], r["prior"]
    from_nothing = "" if r.get("prior_gate_odds") is None else f" (x {r['prior_gate_odds']:g} from nothing)"
    gate = "" if r.get("gate_odds") is None else \
        f"piano gate odds x {r['gate_odds']:g}{from_nothing}, {r['gate_draws']} draws, "
    lines = [f"# band-5 multitrack benchmark\n\n`python benchmarks/multitrack.py {r['checkpoint']} --data "
             f"{r['data']}` (latent temperature {r['temperature']}, piano x {r.get('piano_temperature', 1.0)}, "
             f"{gate}decoding {r.get('decoding', 'sample')}): "
             f"{r['valid_pieces']} {'training' if r.get('split') == 'train' else 'held-out'} pieces"
             f"{' after the first ' + str(r['offset']) if r.get('offset') else ''}, "
             f"{lat['pairs']} window pairs, "
             f"{r['continuations']} continuations ({len(r.get('presence_recall_per_draw', [0]))} draws per "
             f"primer), {prior['n_generated']} prior samples ({r['seconds']:.0f} s).\n",
             "## Latent predictors and autoencoder (validation)\n",
             "| instrument | predictor MSE | in the seed's scale | seed MSE | copy-last MSE | target variance | "
             "MSE / variance | latent std (windows it plays) | seed latent std |", "|---" * 9 + "|"]
    for g in MULTITRACK_GROUPS:
        x = lat[g]
        lines.append(f"| {g} | {x['mse']:.4f} | {x['seed_scale_mse']:.4f} | {SEED_MSE[g]:g} | {x['copy_mse']:.4f} | "
                     f"{x['target_var']:.4f} | "
                     f"{x['mse'] / max(x['target_var'], 1e-12):.3f} | {x['latent_std']:.3f} | "
                     f"{SEED_STD.get(g, '-')} |")
    lines.append("\nIn the seed's scale: latents rescaled so that their interquartile range is +-0.1, the seed's piano "
                 "latents' (the seed's figures are in its own scale; its drum latents had collapsed).")
    lines += ["\n## Continuations: bars an instrument plays where the real continuation has it "
              "(target >= 80 % where the primer has the part)\n",
              "| | " + " | ".join(MULTITRACK_GROUPS) + " |", "|---|---|---|---|---|---|",
              percent_row("recall (all draws)", pr)]
    per_draw = r.get("presence_recall_per_draw", [])
    if len(per_draw) > 1:
        lines.append("| lowest - highest draw | " + " | ".join(
            f"{100 * min(d[g] for d in per_draw):.1f} - {100 * max(d[g] for d in per_draw):.1f} %"
            for g in MULTITRACK_GROUPS) + " |")
    if "presence_precision" in r:
        lines.append(percent_row("precision: real has it where generated plays", r["presence_precision"]))
    for primed, label in ((True, "primer has the part"), (False, "part enters after the primer")):
        split = r.get(f"presence_recall_primed_{str(primed).lower()}")
        if split:
            lines.append(percent_row(f"recall where the {label}", split))
    if "copy_primer" in r:
        for figure in ("recall", "precision"):
            lines.append(percent_row(f"copying the primer's parts: {figure}", r["copy_primer"][figure]))
        lines += ["\nCopying the primer's parts: each part the primer has plays in every new bar, no other "
                  "(what following the primer alone reaches). A part that enters after the primer cannot be foreseen "
                  "from it, so the target counts the bars of parts the primer has; all bars are shown beside.\n",
                  "## Parts stopping and entering, per 2-bar window "
                  "of the continuations (generated vs real)\n",
                  "| | " + " | ".join(MULTITRACK_GROUPS) + " |", "|---|---|---|---|---|---|"]
        for move, label in (("stop", "stops after playing"), ("enter", "enters after resting")):
            for side in ("generated", "real"):
                lines.append(percent_row(f"{label}: {side}", r["transitions"][side][move]))
    lines += ["\n## Prior samples vs real 16-bar excerpts: overlapping area (target: within 0.1 of real vs real)\n",
              "| feature set | generated vs real | real vs real | gap |", "|---|---|---|---|"]
    for g, value in prior["overlap_area"].items():
        ceiling = prior["overlap_area_real_vs_real"].get(g, float("nan"))
        lines.append(f"| {g} | {value:.3f} | {ceiling:.3f} | {ceiling - value:+.3f} |")
    lines += ["\n## MuseGAN metrics (mean over pieces)\n", "| metric | generated | real |", "|---|---|---|"]
    for name, value in prior["generated"].items():
        lines.append(f"| {name} | {value:.3f} | {prior['reference'][name]:.3f} |")
    density = np.asarray(r["density_per_window"])
    lines += ["\n## Note onsets per step in each 2-bar window (prior samples, no primer; all five groups)\n",
              "| window | " + " | ".join(MULTITRACK_GROUPS) + " | total |", "|---|---|---|---|---|---|---|"]
    for i, row in enumerate(density):
        lines.append(f"| {i + 1} | " + " | ".join(f"{v:.3f}" for v in row) + f" | {row.sum():.3f} |")
    real = np.asarray(r["real_density"])
    lines.append("| real (mean) | " + " | ".join(f"{v:.3f}" for v in real) + f" | {real.sum():.3f} |")
    lines.append(f"\nLast / first window total density: {density[-1].sum() / max(density[0].sum(), 1e-9):.2f}.\n")
    return "\n".join(lines)


def percent_row(label: str, figures: dict) -> str:
    """A markdown table row: the label, then each group's figure in per cent ("-" where undefined)."""
    cells = (f"{100 * figures[g]:.1f} %" if np.isfinite(figures[g]) else "-" for g in MULTITRACK_GROUPS)
    return f"| {label} | " + " | ".join(cells) + " |"


if __name__ == "__main__":
    main()
