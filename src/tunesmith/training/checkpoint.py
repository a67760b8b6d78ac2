"""Training-side checkpoint helpers: RNG state for an exact resume, and slim copies for shipping.

The checkpoint format, the writer and the one loader live in `tunesmith.models.checkpoint`.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tunesmith.models.checkpoint import load_checkpoint, save_checkpoint


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
    slim = slim_payload(load_checkpoint(src), half=half)
    save_checkpoint(slim, Path(dst))
    return slim


def slim_payload(payload: dict[str, Any], weights: dict[str, torch.Tensor] | None = None,
                 half: bool = False) -> dict[str, Any]:
    """`payload` without optimizer, RNG or resume position, with `weights` (default: its own), floating-point
    ones as fp16 when `half`: what `export_for_inference` writes, for scripts that change a model's tables."""
    slim = {k: v for k, v in payload.items() if k not in ("optimizer", "rng", "position", "format")}
    weights = payload["weights"] if weights is None else weights
    slim["weights"] = {k: v.half() if half and v.is_floating_point() else v for k, v in weights.items()}
    return slim
