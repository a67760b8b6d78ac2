"""Retrain a band checkpoint's latent predictors with `context` K (models/latent_predictor.py) on its frozen
autoencoder: the piece-history input the training loop's window-pair batches cannot give.

Every whole window of the checkpoint's train pieces is encoded once (`models/band_latents.py`); the new
predictors start as the checkpoint's own (`BandModel.grown_weight`: zero weights on the history) and learn on every
consecutive window pair with the piece so far, by the same loss as the training loop (squared error / 2 +
Gaussian NLL, input noise). Everything else (autoencoder, start distribution, decoding tables) is kept.
Prints the validation NLL and MSE / variance per group after each epoch (the checkpoint's valid pieces).

Usage: python benchmarks/train_band_context.py [CKPT] --data DIR --out NEW.ckpt [--context 3] [--epochs 4]
       [--batch-size 256] [--lr 3e-4] [--cache FILE.pt] [--hold-back N] [--gate]
(--hold-back N: the first N train pieces are left out of training and scored beside the valid ones, so that
`multitrack.py --split train --pieces M` (M < N) measures pieces the predictors did not see, for choosing.)
(writes fp16 weights, no optimizer state: a checkpoint to load, not to resume.)
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

from tunesmith.data.sources import load_scores
from tunesmith.data.splits import split_ids
from tunesmith.generation.band import band_representation
from tunesmith.models import build_model, make_config
from tunesmith.models.band_latents import context_pairs, encode_pieces
from tunesmith.models.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from tunesmith.training.init_from import initialise_from


def models(payload: dict, source: Path, context: int, gate: bool = False):
    """(the checkpoint's band model, a copy with context predictors grown from its own by `trainer.init_from`'s
    rule, `BandModel.grown_weight`)."""
    weights = {k: v.float() if v.is_floating_point() else v for k, v in payload["weights"].items()}
    old = build_model("band", make_config("band", payload["model"]["config"], {}))
    old.load_state_dict(weights)
    new = build_model("band", make_config("band", {**payload["model"]["config"], "context": context, "gate": gate},
                                          {}))
    initialise_from(new, "band", None, str(source))
    return old, new


def latents(model, payload: dict, data: str, cache: Path | None) -> dict[str, list]:
    """{"train": [...], "valid": [...]} PieceLatents of the checkpoint's split of `data` (cached in `cache`)."""
    if cache is not None and cache.exists():
        return torch.load(cache, weights_only=False)
    prov, rep = payload.get("provenance", {}), band_representation(model)
    pairs = load_scores(data)
    split = split_ids([p for p, _ in pairs], prov.get("valid_fraction", 0.05), prov.get("test_fraction", 0.0))
    out = {}
    for name in ("train", "valid"):
        ids = set(split[name])
        out[name] = encode_pieces(model, [rep.encode(s) for p, s in pairs if p in ids])
    if cache is not None:
        torch.save(out, cache)
    return out


@torch.no_grad()
def evaluate(predictors, pairs: dict, input_noise: float) -> str:
    """Validation NLL and MSE / variance per group of `pairs`, as one line."""
    predictors.eval()
    valid = torch.ones(len(pairs["z_t"]), dtype=torch.bool)
    _, logs = predictors.loss(pairs["z_t"], pairs["z_next"], valid, input_noise, False, pairs["plays"],
                              history=pairs["history"])
    ratios = [f"{k[9:]} {float(logs[k] / logs['target_var/' + k[9:]]):.3f}" for k in logs if k.startswith("pred_mse/")]
    gate = "" if predictors.gate is None else \
        f"; piano gate BCE {float(predictors.gate_loss(pairs['history'], pairs['plays'], valid)):.4f}"
    return f"valid pred_nll {float(logs['pred_nll']):.4f}; MSE/var " + ", ".join(ratios) + gate


def train(predictors, pairs: dict, valid_pairs: dict, args, input_noise: float) -> None:
    """AdamW with a cosine schedule over `args.epochs` epochs of shuffled pairs."""
    gate = [] if predictors.gate is None else list(predictors.gate.parameters())
    rest = [p for p in predictors.parameters() if all(p is not g for g in gate)]
    groups = [{"params": rest, "scale": 1.0}] + ([{"params": gate, "scale": 10.0}] if gate else [])
    optimizer = torch.optim.AdamW(groups, lr=args.lr)  # the small gate learns at 10 x the rate
    n, size = len(pairs["z_t"]), args.batch_size
    total, step, generator = args.epochs * (n // size), 0, torch.Generator().manual_seed(args.seed)
    print(f"{n} train pairs, {len(valid_pairs['z_t'])} valid; before: {evaluate(predictors, valid_pairs, input_noise)}",
          flush=True)
    started = time.perf_counter()
    for epoch in range(args.epochs):
        order = torch.randperm(n, generator=generator)
        predictors.train()
        for b in range(n // size):
            idx = order[b * size : (b + 1) * size]
            for group in optimizer.param_groups:
                group["lr"] = group["scale"] * args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / total)))
            valid = torch.ones(len(idx), dtype=torch.bool)
            loss, _ = predictors.loss(pairs["z_t"][idx], pairs["z_next"][idx], valid, input_noise, True,
                                      pairs["plays"][idx], history=pairs["history"][idx])
            if gate:
                loss = loss + predictors.gate_loss(pairs["history"][idx], pairs["plays"][idx], valid)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
        print(f"epoch {epoch + 1} ({step} steps, {time.perf_counter() - started:.0f} s): "
              f"{evaluate(predictors, valid_pairs, input_noise)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", default="band-5")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--context", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hold-back", type=int, default=0, help="first N train pieces left out (see usage)")
    parser.add_argument("--gate", action="store_true", help="also train a piano gate (BandConfig.gate)")
    parser.add_argument("--cache", type=Path, default=None, help="file for the encoded latents (reused when present)")
    args = parser.parse_args()
    if args.context < 1 or args.epochs < 1:
        print("--context and --epochs must be at least 1", file=sys.stderr)
        raise SystemExit(2)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    source = resolve_checkpoint(args.checkpoint)
    payload = load_checkpoint(source)
    old, new = models(payload, source, args.context, args.gate)
    pieces = latents(old, payload, args.data, args.cache)
    if args.hold_back:
        pieces = {"train": pieces["train"][args.hold_back :], "valid": pieces["train"][: args.hold_back]}
        print(f"held back the first {args.hold_back} train pieces: 'valid' below are those", flush=True)
    pairs = {name: context_pairs(p, args.context) for name, p in pieces.items()}
    train(new.predictors, pairs["train"], pairs["valid"], args, new.config.input_noise)
    payload = {k: v for k, v in payload.items() if k not in ("optimizer", "rng", "position", "format")}
    payload["model"] = {**payload["model"], "config": {**payload["model"]["config"], "context": args.context,
                                                       "gate": args.gate}}
    payload["weights"] = {k: v.half() if v.is_floating_point() else v for k, v in new.state_dict().items()}
    save_checkpoint(payload, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
