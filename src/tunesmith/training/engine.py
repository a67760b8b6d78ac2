"""How objectives turn micro-batches into one optimizer update: precision, accumulation, clipping.

An update takes `parts`, a list of (batch, weight) micro-batches whose weights (items in the batch /
items in the step) sum to 1: each part's loss is multiplied by its weight before `backward`, so the
summed gradient is that of the mean loss over every item of the step, as one large batch would give
(also when the epoch's last micro-batch is short). Under DDP only the last part all-reduces gradients.

Precision: `fp32`; `bf16` runs forward passes under autocast (CUDA or CPU; no scaler needed: bf16 has
fp32's range); `fp16` autocasts on CUDA and scales the loss with one GradScaler per optimizer (saved in
checkpoints, so a resumed run scales as the uninterrupted one does).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from tunesmith.core.errors import UserError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(requested: str, device: torch.device) -> str:
    """fp32 | bf16 | fp16 for `requested` (auto: bf16 on a CUDA GPU that has it, else fp32) on `device`."""
    if requested == "auto":
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return "bf16" if cuda_bf16 else "fp32"
    if requested == "fp16" and device.type != "cuda":
        raise UserError(f"precision fp16 needs a CUDA GPU (its GradScaler), but this run trains on "
                        f"{device.type}; use bf16 or fp32")
    if requested == "bf16" and device.type not in ("cuda", "cpu"):
        raise UserError(f"precision bf16 autocasts on CUDA or the CPU, not on {device.type}; use fp32")
    if requested == "bf16" and device.type == "cpu" and not cpu_has_bf16():
        raise UserError("precision bf16 needs a CPU with bf16 instructions (AVX-512 BF16 or AMX; oneDNN's LSTM "
                        "has no other bf16 path), which this one lacks; use fp32")
    return requested


def cpu_has_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX2-only CPUs cannot run an LSTM under bf16)."""
    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(probe()) if probe is not None else True


def resolve_compile(requested: bool | str, device: torch.device) -> bool:
    """torch.compile on? auto: on CUDA (where fused kernels pay for the compile time), off elsewhere."""
    return device.type == "cuda" if requested == "auto" else bool(requested)


class Engine:
    """Runs forward passes (`net(method, batch)`, the model or its DDP / compiled wrapper) under the
    run's precision, and makes optimizer updates from weighted micro-batches."""

    def __init__(self, model: nn.Module, precision: str = "fp32", device_type: str = "cpu",
                 net: Callable[..., Any] | None = None, no_sync: Callable[[], Any] = contextlib.nullcontext):
        self.model, self.precision, self.device_type = model, precision, device_type
        self.net = net if net is not None else (lambda method, batch: getattr(model, method)(batch))
        self.no_sync = no_sync
        self.scalers: dict[str, torch.amp.GradScaler] = {}

    def autocast(self) -> Any:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=DTYPES[self.precision])

    def scaler(self, name: str) -> torch.amp.GradScaler | None:
        if self.precision != "fp16":
            return None
        if name not in self.scalers:
            self.scalers[name] = torch.amp.GradScaler(self.device_type)
        return self.scalers[name]

    def losses(self, method: str, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """`model.<method>(batch)` under autocast, through the training wrapper (validation: no grad)."""
        with self.autocast():
            return self.net(method, batch) if torch.is_grad_enabled() else getattr(self.model, method)(batch)

    def update(self, name: str, optimizer: torch.optim.Optimizer, method: str,
               parts: list[tuple[dict[str, Tensor], float]], params: list[nn.Parameter],
               clip: float | None) -> dict[str, float]:
        """One optimizer step on the weighted sum of `model.<method>` losses over `parts`; returns each
        loss term averaged over the parts with the same weights."""
        optimizer.zero_grad(set_to_none=True)
        scaler, logs = self.scaler(name), {}
        for i, (batch, weight) in enumerate(parts):
            sync = contextlib.nullcontext() if i == len(parts) - 1 else self.no_sync()
            with sync:
                losses = self.losses(method, batch)
                loss = losses["loss"] * weight
                (scaler.scale(loss) if scaler else loss).backward()
            for key, value in losses.items():
                logs[key] = logs.get(key, 0.0) + weight * float(value.detach())
        if scaler:
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        if clip:
            torch.nn.utils.clip_grad_norm_(params, clip)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        return logs

    def state_dict(self) -> dict[str, Any]:
        return {name: scaler.state_dict() for name, scaler in self.scalers.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, saved in state.items():
            scaler = self.scaler(name)
            if scaler is not None:
                scaler.load_state_dict(saved)
