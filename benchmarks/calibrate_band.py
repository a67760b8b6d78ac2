"""Fill a band checkpoint's decoding tables from its training pieces, for a checkpoint trained before the
training loop measured them: the count calibration (`band_decoding.DecodingStats.count_scale`) and, with
`voicing=true`, the pitch span and voices per group (`DecodingStats.update_voicing`).

The same updates the training loop runs on every batch (`BandModel.calibrate_counts`,
`DecodingStats.update_voicing`), over `--batches` batches of consecutive window pairs of the checkpoint's
train split; no weight changes.

Usage: python benchmarks/calibrate_band.py CKPT --data DIR --out NEW.ckpt [--batches 400]
       [--generation temperature=T decoding=RULE voicing=true]
(--generation: the checkpoint's generation defaults, `temperature`, `decoding` and `voicing`; fp32
weights: ship with `training.checkpoint.export_for_inference(NEW, DST, half=True)`.)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from tunesmith.data.datasets import FrameWindows
from tunesmith.data.sources import load_scores
from tunesmith.data.splits import split_ids
from tunesmith.generation.band import band_representation
from tunesmith.models import build_model, make_config
from tunesmith.models.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from tunesmith.models.window_ae import window_planes

NEW = ("notes.count_scale", "notes.count_batches", "notes.span", "notes.voices", "notes.voicing_batches")
GENERATION = {"temperature": float, "decoding": str, "voicing": lambda v: v.lower() in ("1", "true", "yes"),
              "harmony": float}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--generation", nargs="*", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    torch.set_num_threads(1)
    payload = load_checkpoint(resolve_checkpoint(args.checkpoint))
    for item in args.generation:
        key, _, value = item.partition("=")
        if key not in GENERATION:
            raise SystemExit(f"--generation sets {', '.join(GENERATION)}, not {key!r}")
        payload["model"]["config"][key] = GENERATION[key](value)
    model = build_model("band", make_config("band", payload["model"]["config"], {}))
    if model.config.context:
        print("calibrate_band measures one-window predictors; a context checkpoint keeps the tables it was "
              "grown from (benchmarks/train_band_context.py)", file=sys.stderr)
        raise SystemExit(2)
    weights = {k: v.float() if v.is_floating_point() else v for k, v in payload["weights"].items()}
    missing = model.load_state_dict(weights, strict=False).missing_keys
    if set(missing) - set(NEW):
        raise SystemExit(f"not a band checkpoint of this version: missing {sorted(set(missing) - set(NEW))}")
    prov = payload.get("provenance", {})
    pairs = load_scores(args.data)
    train_ids = set(split_ids([p for p, _ in pairs], prov.get("valid_fraction", 0.05),
                              prov.get("test_fraction", 0.0))["train"])
    rep, w = band_representation(model), model.config.window
    windows = FrameWindows([rep.encode(s) for p, s in pairs if p in train_ids], 2 * w, w, time_axis=1)
    order = torch.randperm(len(windows), generator=torch.Generator().manual_seed(0))
    model.eval()
    with torch.no_grad():
        for b in range(min(args.batches, len(order) // args.batch_size)):
            items = [windows[int(i)] for i in order[b * args.batch_size : (b + 1) * args.batch_size]]
            batch = {k: torch.stack([x[k] for x in items]) for k in ("frames", "mask")}
            planes, mask = window_planes(batch, w)
            next_planes, next_mask = window_planes(batch, w, offset=w)
            z_t, z_next = model.codec.encode_groups(planes), model.codec.encode_groups(next_planes)
            model.calibrate_counts(z_t, z_next, next_planes, next_mask.all(1), planes[:, :, 1].flatten(2).any(-1))
            if model.notes.voicing:
                model.notes.update_voicing(planes, mask)
    print("count_scale (onset, sustain) per group:", model.notes.count_scale.tolist())
    if model.notes.voicing:
        print("pitch span, voices per group:", model.notes.span.tolist(), model.notes.voices.tolist())
    payload = {k: v for k, v in payload.items() if k not in ("optimizer", "rng", "position", "format")}
    payload["weights"] = model.state_dict()
    save_checkpoint(payload, args.out)


if __name__ == "__main__":
    main()
