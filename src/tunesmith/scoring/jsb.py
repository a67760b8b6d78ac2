"""The JSB Chorales likelihood benchmark (Boulanger-Lewandowski et al. 2012), torch side.

The figure is the exact negative log-likelihood per time step in nats:

    NLL = - sum over pieces p, frames t of log P(v_pt | v_p1 .. v_p,t-1)  /  (number of frames)

where v_pt is the frame of 88 binary units (keys MIDI 21..108; 1 = sounding), so each frame's term is
the sum over its 88 units, and every frame of every piece of the split counts once (the first frame is
conditioned on nothing). Only previous frames of the same piece may be used: a model may ignore some of
them (seq2one windows, seq2seq chunks), never look ahead.

A model takes part by implementing `frame_log_likelihood(sounding, mask) -> log-probs`, with
sounding (batch, time, 88) in {0, 1}, mask (batch, time) bool, and the result (batch, time) in nats.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tunesmith.core.constants import PIANO_KEYS
from tunesmith.core.errors import UserError
from tunesmith.corpora.jsb import grid_from_name, load_jsb
from tunesmith.io.atomic import write_atomic
from tunesmith.models.checkpoint import load_model


def pad_pieces(rolls: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pieces (T_i, 88) -> zero-padded (n, max T, 88) float and mask (n, max T) bool."""
    longest = max(len(r) for r in rolls)
    x = torch.zeros(len(rolls), longest, PIANO_KEYS)
    mask = torch.zeros(len(rolls), longest, dtype=torch.bool)
    for i, roll in enumerate(rolls):
        x[i, : len(roll)] = torch.from_numpy(np.asarray(roll, dtype=np.float32))
        mask[i, : len(roll)] = True
    return x, mask


@torch.no_grad()
def jsb_nll(model: Any, rolls: list[np.ndarray], batch_size: int = 16) -> dict[str, float]:
    """Exact NLL of `model` on pieces (T_i, 88) bool -> {"nll": nats per frame, "total_nats", "frames",
    "pieces"}."""
    if hasattr(model, "eval"):
        model.eval()
    total, frames = 0.0, 0
    order = sorted(range(len(rolls)), key=lambda i: len(rolls[i]))  # similar lengths batch with less padding
    for start in range(0, len(order), batch_size):
        x, mask = pad_pieces([rolls[i] for i in order[start : start + batch_size]])
        log_p = model.frame_log_likelihood(x, mask)
        total -= float(log_p[mask].double().sum())
        frames += int(mask.sum())
    if frames == 0:
        raise UserError("the JSB split holds no frames to score")
    return {"nll": total / frames, "total_nats": total, "frames": frames, "pieces": len(rolls)}


def load_scorable(checkpoint: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A checkpoint's model in eval mode, and its payload; UserError if it cannot score JSB frames."""
    loaded = load_model(checkpoint)
    likelihood = loaded.model.likelihood
    if likelihood is None or likelihood.unit != "frame" or not hasattr(loaded.model, "frame_log_likelihood"):
        raise UserError(f"a {loaded.name} model has no likelihood over piano-roll frames, so it cannot be "
                        "scored on JSB Chorales")
    return loaded.model, {**loaded.checkpoint, "path": str(loaded.path)}


def check_grid(payload: dict[str, Any], data: Path) -> int:
    """Steps per quarter of the JSB file (named '16th' -> 4, else quarter -> 1), which must match the
    grid the model was trained on."""
    file_grid = grid_from_name(data) or 1
    model_grid = payload.get("representation", {}).get("config", {}).get("steps_per_quarter", file_grid)
    if model_grid != file_grid:
        raise UserError(f"the model was trained on a grid of {model_grid} step(s) per quarter note but "
                        f"{data.name} has {file_grid}; score it on a JSB file of its own grid")
    return file_grid


def benchmark_jsb(checkpoint: str | Path, data: Path, split: str, out: Path | None = None) -> dict[str, Any]:
    """`tunesmith benchmark jsb`: score one split of a JSB file, write the result as JSON; returns it."""
    if split not in ("valid", "test"):
        raise UserError(f"--split must be valid or test, got {split!r}")
    rolls = load_jsb(data)  # a bad data file is found before the (large) model is loaded
    if split not in rolls:
        raise UserError(f"{data} has no {split!r} split (it holds {', '.join(rolls)})")
    model, payload = load_scorable(checkpoint)
    grid = check_grid(payload, Path(data))
    # a family's own thread count first: recurrent steps are small, and on a busy 2-core box two fighting
    # threads scored the 39-component jsb-best in 5 min where one thread took 44 s
    torch.set_num_threads(getattr(model, "cpu_threads", None) or max(1, min(4, torch.get_num_threads())))
    started = time.perf_counter()
    score = jsb_nll(model, rolls[split])
    result = {
        "benchmark": "jsb-chorales", "model": payload["model"]["name"],
        "checkpoint": payload["path"], "data": str(data), "split": split,
        "grid_steps_per_quarter": grid, "nll_nats_per_frame": round(score["nll"], 6),
        "total_nats": round(score["total_nats"], 3), "frames": score["frames"], "pieces": score["pieces"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "seconds": round(time.perf_counter() - started, 2), "provenance": payload.get("provenance", {}),
    }
    path = Path(out) if out is not None else Path(f"jsb-{payload['model']['name']}-{split}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(result, indent=2) + "\n").encode())
    result["written"] = str(path)
    return result
