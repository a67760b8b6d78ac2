"""Fill a band checkpoint's decoding tables from its training pieces, for a checkpoint trained before the
training loop measured them: the count calibration (`band_decoding.DecodingStats.count_scale`), with
`voicing=true` the pitch span and voices per group (`DecodingStats.update_voicing`), with `kit=true` the
drum kit per window and per two consecutive windows (`DecodingStats.update_kit`), with `groove=true` the drum hits
per pitch and step of the bar (`DecodingStats.update_groove`), and with `start_pattern=true` which groups sound
together in each window (`band_start.StartDistribution.count_patterns`).

The same updates the training loop runs on every batch (`BandModel.calibrate_counts`,
`DecodingStats.update_voicing`, `DecodingStats.update_kit`, `count_patterns`), over `--batches` batches of
consecutive window pairs of the checkpoint's train split; no weight changes. `--measure` names the tables to
measure (default: all the config uses); the others keep the checkpoint's values, so e.g. `--generation kit=true
--measure kit` adds the kit to a shipped model and changes nothing else.

Usage: python benchmarks/calibrate_band.py CKPT --data DIR --out NEW.ckpt [--batches 400]
       [--generation temperature=T decoding=RULE voicing=true harmony=H kit=true groove=true start_pattern=true]
       [--measure counts voicing kit groove patterns] [--half]
(--generation: the checkpoint's generation defaults; fp32 weights unless `--half`, which stores floating-point
weights as fp16 like `training.checkpoint.export_for_inference(NEW, DST, half=True)`, the shipped format.)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from script_exit import refuse  # benchmarks/: one sentence, exit 2

from tunesmith.data.datasets import FrameWindows
from tunesmith.data.sources import load_scores
from tunesmith.data.splits import split_ids
from tunesmith.generation.band import band_representation
from tunesmith.models import build_model, make_config
from tunesmith.models.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from tunesmith.models.window_ae import window_planes
from tunesmith.training.checkpoint import slim_payload

TABLES = {"counts": ("notes.count_scale", "notes.count_batches"),
          "voicing": ("notes.span", "notes.voices", "notes.voicing_batches"),
          "kit": ("notes.kit", "notes.kit_batches"), "groove": ("notes.groove",),
          "patterns": ("start.patterns",)}  # what `--measure` names -> its buffers
NEW = tuple(name for names in TABLES.values() for name in names)  # buffers a checkpoint may lack


def _flag(value: str) -> bool:
    return value.lower() in ("1", "true", "yes")


GENERATION = {"temperature": float, "decoding": str, "voicing": _flag, "harmony": float, "kit": _flag,
              "start_pattern": _flag, "groove": _flag}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--generation", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--measure", nargs="*", choices=TABLES, default=list(TABLES))
    parser.add_argument("--half", action="store_true", help="store floating-point weights as fp16")
    args = parser.parse_args()
    torch.set_num_threads(1)
    payload = load_checkpoint(resolve_checkpoint(args.checkpoint))
    for item in args.generation:
        key, _, value = item.partition("=")
        if key not in GENERATION:
            refuse(f"--generation sets {', '.join(GENERATION)}, not {key!r}")
        payload["model"]["config"][key] = GENERATION[key](value)
    model, missing = band_from(payload, NEW)
    if model.config.context and "counts" in args.measure:  # its predictors read the piece so far, not these pairs
        refuse("calibrate_band measures the count calibration of one-window predictors; for a context checkpoint "
               "name the other tables (--measure voicing kit groove patterns)")
    unmeasured = sorted(t for t, names in TABLES.items() if t not in args.measure
                        and any(n in missing for n in names))
    if unmeasured:
        refuse(f"the checkpoint has no {', '.join(unmeasured)} tables: add them to --measure")
    prov = payload.get("provenance", {})
    pairs = load_scores(args.data)
    train_ids = set(split_ids([p for p, _ in pairs], prov.get("valid_fraction", 0.05),
                              prov.get("test_fraction", 0.0))["train"])
    rep, w = band_representation(model), model.config.window
    windows = FrameWindows([rep.encode(s) for p, s in pairs if p in train_ids], 2 * w, w, time_axis=1)
    order = torch.randperm(len(windows), generator=torch.Generator().manual_seed(0))
    model.eval()
    for b in range(min(args.batches, len(order) // args.batch_size)):
        items = [windows[int(i)] for i in order[b * args.batch_size : (b + 1) * args.batch_size]]
        measure(model, {k: torch.stack([x[k] for x in items]) for k in ("frames", "mask")}, args.measure)
    print("count_scale (onset, sustain) per group:", model.notes.count_scale.tolist())
    if model.notes.voicing:
        print("pitch span, voices per group:", model.notes.span.tolist(), model.notes.voices.tolist())
    if model.notes.drum_kit:
        kit, batches = model.notes.kit.tolist(), model.notes.kit_batches.tolist()
        print(f"drum kit: {kit[0]:.2f} pitches per window, {kit[1]:.2f} per two consecutive windows "
              f"({batches[0]}, {batches[1]} batches)")
    if model.config.start_pattern:
        print("start patterns (windows per pattern, bit g: group g sounds):", model.start.patterns.tolist())
    save_checkpoint(slim_payload(payload, model.state_dict(), args.half), args.out)


def band_from(payload: dict, may_lack: tuple[str, ...]) -> tuple:
    """(the band model of `payload`'s config, as the caller edited it, with the payload's weights as fp32; the
    names of the weights it lacks). Refuses a checkpoint that lacks one whose name does not start with one of
    `may_lack` (the tables or heads the caller adds)."""
    model = build_model("band", make_config("band", payload["model"]["config"], {}))
    weights = {k: v.float() if v.is_floating_point() else v for k, v in payload["weights"].items()}
    missing = model.load_state_dict(weights, strict=False).missing_keys
    if lacking := sorted(k for k in missing if not k.startswith(may_lack)):
        refuse(f"not a band checkpoint of this version: missing {lacking[0]}")
    return model, missing


@torch.no_grad()
def measure(model, batch: dict, tables: list[str]) -> None:
    """The named tables' updates on one batch of window pairs (frames (B, 2W, 5, 128), mask (B, 2W))."""
    w = model.config.window
    planes, mask = window_planes(batch, w)
    next_planes, next_mask = window_planes(batch, w, offset=w)
    if "counts" in tables:
        z_t, z_next = model.codec.encode_groups(planes), model.codec.encode_groups(next_planes)
        model.calibrate_counts(z_t, z_next, next_planes, next_mask.all(1), planes[:, :, 1].flatten(2).any(-1))
    if model.notes.voicing and "voicing" in tables:
        model.notes.update_voicing(planes, mask)
    if model.notes.drum_kit and "kit" in tables:
        model.notes.update_kit(planes, mask, next_planes, next_mask.all(1))
    if model.notes.drum_groove and "groove" in tables:
        model.notes.update_groove(planes, mask)
    if model.config.start_pattern and "patterns" in tables:
        model.start.count_patterns(planes, mask)


if __name__ == "__main__":
    main()
