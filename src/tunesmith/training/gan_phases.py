"""A GAN objective with pretraining phases, gradient accumulation and mixed precision (objective
"adversarial-phased"; the audio VAE-GAN uses it).

The model provides `generator_parameters()`, `discriminator_parameters()`, `pretrain_generator_loss`,
`generator_loss`, `discriminator_loss`, `validation_metrics` (each a dict holding "loss") and config
counts `pretrain_g_steps`, `pretrain_d_steps`, `d_steps`, `g_steps`, `accumulation`, `d_lr_ratio`, `amp`.

Which update a batch feeds is a function of the loop's batch counter alone (so resuming keeps the
schedule): batches [0, P_g) pretrain G on its own loss, [P_g, P_g + P_d) pretrain D with its own
optimizer ("discriminator_pretrain"), then updates cycle through `d_steps` D updates and `g_steps` G
updates, each the sum of `accumulation` consecutive batches' gradients (losses divided by it). A resumed
run restarts an accumulation that the checkpoint cut in two. On CUDA with `amp`, losses run under
bfloat16 autocast (no loss scaling needed: bfloat16 has float32's range). One process only: under
torchrun it stops with one sentence.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import Tensor, nn

from tunesmith.core.errors import UserError


class PhasedAdversarialObjective:
    """Pretrain G, pretrain D, then alternate D and G updates with gradient accumulation."""

    def __init__(self, model: nn.Module, cfg: Any) -> None:
        from tunesmith.training.objectives import _adamw, _decays

        self.model, self.cfg, c = model, cfg, model.config
        self.g_params = list(model.generator_parameters())
        self.d_params = list(model.discriminator_parameters())
        decays, d_cfg = _decays(model), cfg.model_copy(update={"lr": cfg.lr * c.d_lr_ratio})
        self.optimizers = {"generator": _adamw(self.g_params, cfg, decays),
                           "discriminator": _adamw(self.d_params, d_cfg, decays),
                           "discriminator_pretrain": _adamw(self.d_params, d_cfg, decays)}
        self.last: dict[str, float] = {}
        self.engine: Any = None  # set by a loop that runs precision through an engine

    def phase(self, step: int) -> tuple[str, bool, bool]:
        """(what batch `step` trains: "pretrain_g" | "pretrain_d" | "d" | "g", starts an update, ends one)."""
        c, accumulation = self.model.config, self.model.config.accumulation
        if step < c.pretrain_g_steps:
            return "pretrain_g", step % accumulation == 0, (step + 1) % accumulation == 0 or \
                step + 1 == c.pretrain_g_steps
        k = step - c.pretrain_g_steps
        if k < c.pretrain_d_steps:
            return "pretrain_d", k % accumulation == 0, (k + 1) % accumulation == 0 or k + 1 == c.pretrain_d_steps
        k -= c.pretrain_d_steps
        update, micro = divmod(k, accumulation)
        which = "d" if update % (c.d_steps + c.g_steps) < c.d_steps else "g"
        return which, micro == 0, micro == accumulation - 1

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.engine is not None and self.engine.precision != "fp32":  # the run's trainer.precision
            return self.engine.autocast()
        device = self.g_params[0].device
        if device.type == "cuda" and self.model.config.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_step(self, batch: dict[str, Tensor], step: int) -> dict[str, float]:
        return self.train_parts([(batch, 1.0)], step)

    def train_parts(self, parts: list[tuple[dict[str, Tensor], float]], step: int) -> dict[str, float]:
        """One batch counter step: `parts` are micro-batches whose weights sum to 1 (the loop's own
        accumulation); their weighted losses add to the update the schedule assigns to `step`."""
        if torch.distributed.is_available() and torch.distributed.is_initialized() \
                and torch.distributed.get_world_size() > 1:  # its updates skip DDP's gradient all-reduce
            raise UserError("the adversarial-phased objective (audio-vaegan) trains on one process; run it "
                            "without torchrun")
        which, starts, ends = self.phase(step)
        is_g = which in ("g", "pretrain_g")
        name = "generator" if is_g else "discriminator_pretrain" if which == "pretrain_d" else "discriminator"
        optimizer, params = self.optimizers[name], self.g_params if is_g else self.d_params
        loss_fn = {"pretrain_g": self.model.pretrain_generator_loss, "g": self.model.generator_loss}.get(
            which, self.model.discriminator_loss)
        scaler = self.engine.scaler(name) if self.engine is not None else None
        if starts:
            optimizer.zero_grad(set_to_none=True)
        for p in self.d_params:  # G's loss runs through D, but D's gradients are not needed then
            p.requires_grad_(not is_g)
        logs: dict[str, float] = {}
        for batch, weight in parts:
            with self._autocast():
                losses = loss_fn(batch)
            loss = losses["loss"].float() * weight / self.model.config.accumulation
            (scaler.scale(loss) if scaler else loss).backward()
            for key, value in losses.items():
                logs[key] = logs.get(key, 0.0) + weight * float(value.detach())
        for p in self.d_params:
            p.requires_grad_(True)
        if ends:
            self._step(optimizer, params, scaler)
        prefix = {"pretrain_g": "pretrain_g_", "pretrain_d": "pretrain_d_", "d": "d_", "g": "g_"}[which]
        self.last.update({f"{prefix}{k}": v for k, v in logs.items()})
        return {**self.last, "loss": logs["loss"] if is_g else self.last.get("g_loss", 0.0)}

    def _step(self, optimizer: torch.optim.Optimizer, params: list[nn.Parameter], scaler: Any) -> None:
        if scaler:
            scaler.unscale_(optimizer)  # clip the true gradients
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()

    @torch.no_grad()
    def valid_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        with self._autocast():
            metrics = self.model.validation_metrics(batch)
        return {k: float(v) for k, v in metrics.items()}
