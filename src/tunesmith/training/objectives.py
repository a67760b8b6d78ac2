"""Training objectives: how one batch becomes optimizer steps. Families only supply their losses.

- `likelihood`: minimise `model.loss(batch)["loss"]` with one AdamW optimizer (a VAE's KL term, or any
  other regulariser, lives in the model's loss).
- `adversarial`: two optimizers over `model.generator_parameters()` / `model.discriminator_parameters()`;
  each batch runs `d_steps` discriminator updates on `model.discriminator_loss(batch)` then `g_steps`
  generator updates on `model.generator_loss(batch)` (counts from the model config).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

from tunesmith.training.config import OptimConfig
from tunesmith.training.gan_phases import PhasedAdversarialObjective  # audio-vaegan


def _adamw(params: Iterable[nn.Parameter], cfg: OptimConfig, decays: Callable[[Tensor], bool]) -> torch.optim.Optimizer:
    """AdamW with weight decay only where the family's `decays(param)` says (default: matrices and
    embeddings, never biases or norm gains: decaying those towards 0 only fights the fit)."""
    params = list(params)
    groups = [{"params": [p for p in params if decays(p)], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if not decays(p)], "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr, betas=cfg.betas)


def _decays(model: nn.Module) -> Callable[[Tensor], bool]:
    """The family's weight-decay rule (`MusicModel.decays`); matrices and up for any other module."""
    return getattr(model, "decays", lambda param: param.dim() >= 2)


def _update(optimizer: torch.optim.Optimizer, loss: Tensor, params: list[nn.Parameter], clip: float | None) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(params, clip)
    optimizer.step()


def _floats(losses: dict[str, Tensor], prefix: str = "") -> dict[str, float]:
    return {f"{prefix}{k}": float(v.detach()) for k, v in losses.items()}


class LikelihoodObjective:
    """One optimizer over all parameters; the model's `loss` dict must hold "loss"."""

    def __init__(self, model: nn.Module, cfg: OptimConfig) -> None:
        self.model, self.cfg = model, cfg
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizers = {"main": _adamw(self.params, cfg, _decays(model))}

    def train_step(self, batch: dict[str, Tensor], step: int) -> dict[str, float]:
        losses = self.model.loss(batch)
        _update(self.optimizers["main"], losses["loss"], self.params, self.cfg.grad_clip)
        return _floats(losses)

    @torch.no_grad()
    def valid_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        return _floats(self.model.loss(batch))


class AdversarialObjective:
    """Alternating discriminator / generator updates, each with its own optimizer."""

    def __init__(self, model: nn.Module, cfg: OptimConfig) -> None:
        self.model, self.cfg = model, cfg
        self.g_params = list(model.generator_parameters())
        self.d_params = list(model.discriminator_parameters())
        decays = _decays(model)
        self.optimizers = {"generator": _adamw(self.g_params, cfg, decays),
                           "discriminator": _adamw(self.d_params, cfg, decays)}

    def train_step(self, batch: dict[str, Tensor], step: int) -> dict[str, float]:
        logs: dict[str, float] = {}
        for _ in range(self.model.config.d_steps):
            d_losses = self.model.discriminator_loss(batch)
            _update(self.optimizers["discriminator"], d_losses["loss"], self.d_params, self.cfg.grad_clip)
            logs.update(_floats(d_losses, "d_"))
        for _ in range(self.model.config.g_steps):
            g_losses = self.model.generator_loss(batch)
            _update(self.optimizers["generator"], g_losses["loss"], self.g_params, self.cfg.grad_clip)
            logs.update(_floats(g_losses, "g_"))
        logs["loss"] = logs.get("g_loss", 0.0)
        return logs

    @torch.no_grad()
    def valid_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        return _floats(self.model.validation_metrics(batch))


OBJECTIVES = {"likelihood": LikelihoodObjective, "adversarial": AdversarialObjective}
OBJECTIVES["adversarial-phased"] = PhasedAdversarialObjective  # audio-vaegan
