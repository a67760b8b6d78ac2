"""The VAE targets of issues 11 and 12, measured on a checkpoint's own held-out pieces (its valid split).

1. The latent: active units (Var over valid windows of the posterior mean > 0.01; target >= 50 % of the
   dimensions), KL per window and per dimension, the validation bound and reconstruction figures (eval
   mode, one posterior draw per window; for conv-vae "f1" of the units at p > 1/2, and the F1 of the
   sounding keys when the posterior mean is decoded as `tunesmith reconstruct` decodes it).
2. Interpolation (issue 12: intermediate pieces each in a key, scale consistency >= 0.9): pairs of valid
   pieces written as MIDI and walked with `generation.latent.interpolate` exactly as `tunesmith
   interpolate A.mid B.mid --steps 8` does (slerp, greedy decoding; and sampled at --temperature 1.0): the
   scale consistency of every intermediate piece (end points left out), its mean, minimum and the share
   >= 0.9, with the notes and pitch classes per piece (a one-note line would be in a key trivially).
3. Prior samples (issue 11: OA >= 0.90 against the corpus in the model's own representation, PCH KL
   small), side by side in one run: the checkpoint sampling from N(0, I) and from its fitted mixture
   prior (`tunesmith fit-prior`), each measured by `benchmarks/quality.py`'s `measure` (32 x 16 bars).

Usage: python benchmarks/vae.py [CKPT] [--pairs 20] [--steps 8] [--n 32] [--bars 16] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).parent))
import quality  # noqa: E402 (benchmarks/quality.py: the one OA measurement)

from tunesmith.data.build import prepare_data  # noqa: E402
from tunesmith.data.config import DataConfig  # noqa: E402
from tunesmith.evaluation.metrics import scale_consistency  # noqa: E402
from tunesmith.generation.latent import interpolate  # noqa: E402
from tunesmith.generation.latent_prior import rebuild_with_prior  # noqa: E402
from tunesmith.io.atomic import write_atomic  # noqa: E402
from tunesmith.io.midi import read_midi, write_midi  # noqa: E402
from tunesmith.models.checkpoint import load_model  # noqa: E402
from tunesmith.models.distributions import SamplingConfig  # noqa: E402
from tunesmith.models.vae import active_units, kl_per_dim  # noqa: E402


def latent_figures(loaded, data) -> dict:
    """Active units, KL and the eval-mode loss logs over every valid window (means per window)."""
    model, mus, logvars, logs = loaded.model.eval(), [], [], {}
    with torch.no_grad():
        for batch in DataLoader(data.valid, batch_size=64):
            mu, logvar, _ = model.batch_posterior(batch)
            mus.append(mu)
            logvars.append(logvar)
            for name, value in model.loss(batch).items():
                logs.setdefault(name, []).append(float(value) * len(mu))
            if hasattr(model, "draw"):  # conv-vae: the posterior mean decoded as `reconstruct` decodes it
                image, mask = model.to_image(batch["frames"]), batch["mask"][:, None, :, None]
                guess = model.draw(model.decode_logits(mu), SamplingConfig(greedy=True)) > 0
                sound, real = guess.any(1, keepdim=True) & mask, (image > 0).any(1, keepdim=True) & mask
                hits, total = float((sound & real).sum()), float(sound.sum() + real.sum())
                logs.setdefault("decoded_f1", []).append(2 * hits / max(total, 1.0) * len(mu))
    mu, logvar = torch.cat(mus), torch.cat(logvars)
    kl = kl_per_dim(mu, logvar).mean(0)
    figures = {name: sum(values) / len(mu) for name, values in logs.items()
               if name in ("nelbo", "recon", "accuracy", "f1", "decoded_f1")}
    return {"windows": len(mu), "latent_dim": mu.shape[1], "active_units": active_units(mu),
            "kl_per_window": float(kl.sum()),
            "kl_per_dim_quartiles": np.quantile(kl.numpy(), [0, .25, .5, .75, 1]).round(3).tolist(),
            **{k: round(v, 4) for k, v in figures.items()}}


def interpolation_figures(checkpoint: str, scores: list, pairs: int, steps: int,
                          temperature: float | None = None) -> dict:
    """Scale consistency, notes and pitch classes of the intermediate pieces of `pairs` interpolations between
    valid pieces (greedy decoding, as `tunesmith interpolate` writes them, or sampled at `temperature`)."""
    order = np.random.default_rng(0).permutation(len(scores))[: 2 * pairs]
    sampling = SamplingConfig(temperature=temperature) if temperature else None
    values, notes, classes = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(0, len(order) - 1, 2):
            a, b = (write_midi(scores[j], Path(tmp) / f"{j}.mid") for j in order[i : i + 2])
            for path in interpolate(checkpoint, a, b, steps, Path(tmp) / f"path{i}", sampling=sampling)[1:-1]:
                score = read_midi(path)
                values.append(scale_consistency(score))
                notes.append(score.note_num())
                classes.append(len({n.pitch % 12 for t in score.tracks for n in t.notes}))
    values = [v for v in values if not math.isnan(v)]
    return {"pairs": len(order) // 2, "steps": steps, "decoding": f"temperature {temperature}" if temperature
            else "greedy", "pieces": len(values), "mean": float(np.mean(values)), "min": float(np.min(values)),
            "share_at_least_0.9": float(np.mean(np.array(values) >= 0.9)), "notes": float(np.mean(notes)),
            "pitch_classes": float(np.mean(classes))}


def prior_rows(loaded, args: argparse.Namespace) -> list[dict]:
    """quality.measure of the checkpoint sampling from N(0, I) and (when fitted) from its mixture prior."""
    rows, fitted = [], int(loaded.model.config.prior_components)
    for components in sorted({0, fitted}):
        model = loaded.model if components == fitted else rebuild_with_prior(loaded, 0)
        config = {**loaded.checkpoint["model"]["config"], "prior_components": components}
        variant = replace(loaded, model=model, checkpoint={**loaded.checkpoint, "model": {
            **loaded.checkpoint["model"], "config": config}})
        quality.load_model = lambda name, variant=variant: variant  # measure() loads by name
        row = quality.measure(args.checkpoint, args)
        rows.append({"prior": f"mixture of {components}" if components else "N(0, I)", **row})
    quality.load_model = load_model
    return rows


def report(result: dict) -> str:
    lat = result["latent"]
    lines = [f"# VAE figures: {result['checkpoint']}", "", f"`python benchmarks/vae.py {result['checkpoint']}` "
             f"({result['settings']})", "", "| latent (valid windows) | value |", "|---|---|",
             f"| active units | {lat['active_units']} / {lat['latent_dim']} |",
             f"| KL per window (nats) / per dimension min, quartiles, max | {lat['kl_per_window']:.1f} / "
             f"{', '.join(f'{v:.3f}' for v in lat['kl_per_dim_quartiles'])} |"]
    lines += [f"| {name} (eval mode, one posterior draw) | {lat[name]:.4f} |"
              for name in ("nelbo", "recon", "accuracy", "f1") if name in lat]
    if "decoded_f1" in lat:
        lines.append(f"| F1 of the sounding keys, posterior mean decoded as `reconstruct` decodes it | "
                     f"{lat['decoded_f1']:.4f} |")
    first = result["interpolation"][0]
    lines += ["", f"Interpolations ({first['pairs']} pairs of valid pieces, {first['steps']} steps, slerp, as "
              f"`tunesmith interpolate` writes them; the {first['pieces']} intermediate pieces):", "",
              "| decoding | scale consistency: mean | min | share >= 0.9 | notes / pitch classes per piece |",
              "|---|---|---|---|---|"]
    lines += [f"| {x['decoding']} | **{x['mean']:.3f}** | {x['min']:.3f} | **{x['share_at_least_0.9']:.2f}** | "
              f"{x['notes']:.1f} / {x['pitch_classes']:.1f} |" for x in result["interpolation"]]
    lines += ["", "| prior | OA (separating) | weakest feature | real-vs-real | random | PCH KL | shorter | copies |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['prior']} | {r['oa']:.3f} | {r['weakest']} ({r['weakest_oa']:.2f}) | {r['ceiling']:.3f} | "
              f"{r['floor']:.3f} | {r['pch_kl']:.3f} | {r['shorter_than_asked']}/{r['pieces']} | {r['copies']} |"
              for r in result["prior"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", default="bach-vae")
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--bars", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    args.temperature = args.top_p = args.reference = None
    args.limit = 200
    loaded = load_model(args.checkpoint)
    section = {**loaded.checkpoint["run_config"]["data"], "transpose": 0}  # held-out pieces, as they are
    data = prepare_data(DataConfig(**section), loaded.model.data_kind, loaded.representation)
    result = {"checkpoint": args.checkpoint, "latent": latent_figures(loaded, data),
              "interpolation": [interpolation_figures(args.checkpoint, data.scores["valid"], args.pairs, args.steps, t)
                                for t in (None, 1.0)],
              "prior": prior_rows(loaded, args),
              "settings": f"pairs={args.pairs}, steps={args.steps}, n={args.n}, bars={args.bars}, seed={args.seed}"}
    text = report(result)
    print(text)
    stem = "vae" if args.checkpoint == "bach-vae" else f"vae-{Path(args.checkpoint).stem}"
    args.out.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out / f"{stem}.json", (json.dumps(result, indent=1, default=float) + "\n").encode())
    write_atomic(args.out / f"{stem}.md", text.encode())


if __name__ == "__main__":
    main()
