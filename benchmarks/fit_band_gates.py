"""Add group gates (`BandConfig.group_gates`, models/band_gates.py) to a band checkpoint with context: only their
head learns, on the checkpoint's training pieces; every other weight and table stays as it was.

A gate reads the piece-so-far summary alone (which groups sounded in the last windows and before, how far the
piece has gone), which depends on the data and not on any weight, so the head is fitted on the pairs the training
loop reads (`data/piece_history.HistoryPairs`: every pair of consecutive windows on each piece's window grid) by
the loop's loss (`GroupGates.loss`) and rate (the recipe's 3e-4 x GATE_LR), without running the loop's encoder and
decoder on every batch. A run of the recipe with `group_gates` set trains the same head in the loop.

Usage: python benchmarks/fit_band_gates.py CKPT --data DIR --groups strings [...] --out NEW.ckpt [--epochs 8]
       [--lr 0.003] [--half]
(CKPT: a .ckpt, run folder or shipped name; DIR: the data it was trained on; --half stores floating-point
weights as fp16, the shipped format.) Prints the BCE per epoch on the training and the held-out pairs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from calibrate_band import band_from  # benchmarks/: the band model of an edited config, its weights loaded
from multitrack import held_out  # benchmarks/: the checkpoint's own split of DIR
from script_exit import refuse  # benchmarks/: one sentence, exit 2

from tunesmith.core.constants import MULTITRACK_GROUPS
from tunesmith.data.piece_history import HistoryPairs
from tunesmith.generation.band import band_representation
from tunesmith.models.checkpoint import load_model, save_checkpoint
from tunesmith.training.checkpoint import slim_payload


def gate_pairs(model, scores: list) -> tuple[torch.Tensor, torch.Tensor]:
    """(history (N, n_context) float, sounds at t+1 (N, 5) bool) of every training pair of `scores`."""
    rep = band_representation(model)
    pairs = HistoryPairs([rep.encode(s) for s in scores], model.piece_history(model.config), time_axis=1)
    history = torch.stack([pairs.history.summary(pairs.sounded[i][None, : t + 1])[0] for i, t in pairs.index])
    return history.float(), torch.stack([pairs.sounded[i][t + 1] for i, t in pairs.index])


def fit(gates, train: tuple, valid: tuple, epochs: int, lr: float, batch: int = 256) -> None:
    """AdamW on the gates' head alone, `epochs` passes over `train` in a seeded order, the rate on the recipe's
    cosine schedule down to 5 %; BCE printed per epoch."""
    optimizer = torch.optim.AdamW(gates.parameters(), lr=lr, weight_decay=0.01)
    steps = epochs * -(-len(train[0]) // batch)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps, eta_min=0.05 * lr)
    generator = torch.Generator().manual_seed(0)
    for epoch in range(epochs):
        gates.train()
        order = torch.randperm(len(train[0]), generator=generator)
        for i in range(0, len(order), batch):
            rows = order[i : i + batch]
            loss = gates.loss(train[0][rows], train[1][rows], torch.ones(len(rows), dtype=torch.bool))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        gates.eval()
        with torch.no_grad():
            figures = [float(gates.loss(h, y, torch.ones(len(h), dtype=torch.bool))) for h, y in (train, valid)]
        print(f"epoch {epoch + 1}: BCE train {figures[0]:.4f}, held out {figures[1]:.4f} nats per pair and group")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--data", required=True)
    parser.add_argument("--groups", nargs="+", required=True, metavar="GROUP")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--half", action="store_true", help="store floating-point weights as fp16")
    args = parser.parse_args()
    torch.set_num_threads(1)
    loaded = load_model(args.checkpoint)
    payload = loaded.checkpoint
    if payload["model"]["name"] != "band" or not loaded.model.config.context:
        refuse(f"{args.checkpoint} is not a band checkpoint with context: group gates read the piece so far")
    unknown = sorted(set(args.groups) - set(MULTITRACK_GROUPS[1:]))
    if unknown or args.epochs < 1 or not args.lr > 0:
        refuse(f"--groups names {', '.join(MULTITRACK_GROUPS[1:])}, --epochs and --lr are positive "
               f"(got {', '.join(unknown) or 'a bad number'})")
    payload["model"]["config"]["group_gates"] = list(args.groups)
    torch.manual_seed(0)  # the head's first weights
    model = band_from(payload, ("predictors.group_gates.",))[0]
    train = gate_pairs(model, held_out(loaded, args.data, 10**9, "train"))
    valid = gate_pairs(model, held_out(loaded, args.data, 10**9, "valid"))
    print(f"{len(train[0])} training pairs, {len(valid[0])} held-out pairs; groups {', '.join(args.groups)}")
    fit(model.predictors.group_gates, train, valid, args.epochs, args.lr)
    save_checkpoint(slim_payload(payload, model.state_dict(), args.half), args.out)


if __name__ == "__main__":
    main()
