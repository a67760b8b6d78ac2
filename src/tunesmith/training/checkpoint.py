"""Self-describing checkpoints, written atomically and loaded with `torch.load(weights_only=True)`.

A checkpoint is one dict (only tensors, numbers, strings, lists and dicts, so the safe loader accepts it):
    format          "tunesmith-checkpoint/1"
    model           {"name": registry name, "config": the model Config as a dict}
    representation  Representation.to_dict() (name, config, learned vocabulary)
    weights         model state_dict
    optimizer       optimizer state_dict(s) (a dict of name -> state_dict), for resuming
    rng             torch / numpy / python RNG states, for an exact resume
    step, epoch     optimizer steps done; epoch in progress
    provenance      data source, split rule and hash of the training piece ids
    metrics         the latest validation figures
    run_config      the resolved recipe
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tunesmith.core.errors import UserError
from tunesmith.resources import checkpoint_dirs

FORMAT = "tunesmith-checkpoint/1"
SUFFIX = ".ckpt"


def save_checkpoint(payload: dict[str, Any], path: Path) -> None:
    """Write `payload` to `path` atomically: a temp file in the same folder, fsync, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save({"format": FORMAT, **payload}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_checkpoint(path: Path | str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely; a missing, truncated or foreign file raises one clear UserError."""
    path = resolve_checkpoint(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for truncated / foreign files
        raise UserError(f"{path} is not a readable tunesmith checkpoint ({_short(error)})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{path} is not a tunesmith checkpoint (no '{FORMAT}' marker)")
    return payload


def resolve_checkpoint(name_or_path: Path | str) -> Path:
    """A checkpoint path, or the name of a shipped one (`lstm-bach` -> checkpoints/lstm-bach.ckpt)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    for folder in checkpoint_dirs():
        candidate = folder / f"{path.name.removesuffix(SUFFIX)}{SUFFIX}"
        if candidate.is_file():
            return candidate
    if path.is_dir() and (path / "checkpoints" / "last.ckpt").is_file():
        return path / "checkpoints" / "last.ckpt"
    raise UserError(f"no checkpoint {name_or_path}: give a .ckpt file, a run folder, or a shipped name "
                    f"({', '.join(shipped_names()) or 'none shipped'})")


def shipped_names() -> list[str]:
    """Names of the checkpoints shipped with tunesmith."""
    return sorted({p.stem for d in checkpoint_dirs() for p in d.glob(f"*{SUFFIX}")})


def _short(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{error.__class__.__name__}: {text[0][:120]}" if text else error.__class__.__name__


def rng_state() -> dict[str, Any]:
    """Every RNG the training loop draws from, in a form `weights_only` loading accepts."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state()` returned."""
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    random.setstate(_to_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(value: Any) -> Any:
    return [_to_lists(v) for v in value] if isinstance(value, tuple | list) else value


def _to_tuples(value: Any) -> Any:
    return tuple(_to_tuples(v) for v in value) if isinstance(value, list) else value


def export_for_inference(src: Path | str, dst: Path | str, half: bool = False) -> dict[str, Any]:
    """Write a slim copy of a checkpoint for shipping: no optimizer, RNG or resume position.

    `half=True` stores floating-point weights as fp16 (they are cast back to fp32 on load by
    `load_state_dict`); returns the payload written.
    """
    payload = load_checkpoint(src)
    slim = {k: v for k, v in payload.items() if k not in ("optimizer", "rng", "position", "format")}
    if half:
        slim["weights"] = {k: v.half() if v.is_floating_point() else v for k, v in payload["weights"].items()}
    save_checkpoint(slim, Path(dst))
    return slim
