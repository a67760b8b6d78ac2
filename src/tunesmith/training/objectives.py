"""Training objectives: how one batch becomes optimizer steps. Families only supply their losses.

- `likelihood`: minimise `model.loss(batch)["loss"]` with one AdamW optimizer (a VAE's KL term, or any
  other regulariser, lives in the model's loss).
- `adversarial`: two optimizers over `model.generator_parameters()` / `model.discriminator_parameters()`;
  each batch runs `d_steps` discriminator updates on `model.discriminator_loss(batch)` then `g_steps`
  generator updates on `model.generator_loss(batch)` (counts from the model config).

The loop hands each step over as `train_parts(parts, step)`: micro-batches with weights summing to 1
(gradient accumulation, `training/engine.py`); `train_step(batch, step)` is the one-batch case. Forward
passes go through `self.engine` (precision, DDP, torch.compile), which the loop sets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

from tunesmith.training.config import OptimConfig
from tunesmith.training.engine import Engine
from tunesmith.training.gan_phases import PhasedAdversarialObjective  # audio-vaegan

Parts = list[tuple[dict[str, Tensor], float]]  # (micro-batch, weight): weights sum to 1


def _adamw(params: Iterable[nn.Parameter], cfg: OptimConfig, decays: Callable[[Tensor], bool],
           scale: Callable[[Tensor], float] = lambda param: 1.0) -> torch.optim.Optimizer:
    """AdamW with weight decay only where the family's `decays(param)` says (default: matrices and
    embeddings, never biases or norm gains: decaying those towards 0 only fights the fit), and each parameter at
    `scale(param)` x lr (`MusicModel.learning_rate_scale`; the loop's schedule keeps the ratios, `lr_ratios`).
    Groups: decayed then not, at scale 1 first (the order every checkpoint's optimizer state was saved in),
    then the same for each other scale, ascending."""
    params = list(params)
    scales = [float(scale(p)) for p in params]
    groups = [{"params": [p for p, s in zip(params, scales, strict=True) if s == rate and decays(p) == decayed],
               "weight_decay": cfg.weight_decay if decayed else 0.0, "lr": cfg.lr * rate}
              for rate in sorted(set(scales), key=lambda s: (s != 1.0, s)) for decayed in (True, False)]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr, betas=cfg.betas)


def _decays(model: nn.Module) -> Callable[[Tensor], bool]:
    """The family's weight-decay rule (`MusicModel.decays`); matrices and up for any other module."""
    return getattr(model, "decays", lambda param: param.dim() >= 2)


def _scale(model: nn.Module) -> Callable[[Tensor], float]:
    """The family's learning-rate ratios (`MusicModel.learning_rate_scale`); 1 for any other module."""
    return getattr(model, "learning_rate_scale", lambda param: 1.0)


def _floats(losses: dict[str, Tensor], prefix: str = "") -> dict[str, float]:
    return {f"{prefix}{k}": float(v.detach()) for k, v in losses.items()}


class LikelihoodObjective:
    """One optimizer over all parameters; the model's `loss` dict must hold "loss"."""

    def __init__(self, model: nn.Module, cfg: OptimConfig) -> None:
        self.model, self.cfg = model, cfg
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizers = {"main": _adamw(self.params, cfg, _decays(model), _scale(model))}
        self.engine = Engine(model)

    def train_step(self, batch: dict[str, Tensor], step: int) -> dict[str, float]:
        return self.train_parts([(batch, 1.0)], step)

    def train_parts(self, parts: Parts, step: int) -> dict[str, float]:
        return self.engine.update("main", self.optimizers["main"], "loss", parts, self.params, self.cfg.grad_clip)

    @torch.no_grad()
    def valid_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        return _floats(self.engine.losses("loss", batch))


class AdversarialObjective:
    """Alternating discriminator / generator updates, each with its own optimizer."""

    def __init__(self, model: nn.Module, cfg: OptimConfig) -> None:
        self.model, self.cfg = model, cfg
        self.g_params = list(model.generator_parameters())
        self.d_params = list(model.discriminator_parameters())
        decays = _decays(model)
        self.optimizers = {"generator": _adamw(self.g_params, cfg, decays),
                           "discriminator": _adamw(self.d_params, cfg, decays)}
        self.engine = Engine(model)

    def train_step(self, batch: dict[str, Tensor], step: int) -> dict[str, float]:
        return self.train_parts([(batch, 1.0)], step)

    def train_parts(self, parts: Parts, step: int) -> dict[str, float]:
        """`d_steps` discriminator updates, then `g_steps` generator updates, each over all the parts."""
        logs: dict[str, float] = {}
        engine, clip = self.engine, self.cfg.grad_clip
        for _ in range(self.model.config.d_steps):
            d_logs = engine.update("discriminator", self.optimizers["discriminator"], "discriminator_loss",
                                   parts, self.d_params, clip)
            logs.update({f"d_{k}": v for k, v in d_logs.items()})
        for _ in range(self.model.config.g_steps):
            g_logs = engine.update("generator", self.optimizers["generator"], "generator_loss", parts,
                                   self.g_params, clip)
            logs.update({f"g_{k}": v for k, v in g_logs.items()})
        logs["loss"] = logs.get("g_loss", 0.0)
        return logs

    @torch.no_grad()
    def valid_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        return _floats(self.engine.losses("validation_metrics", batch))


OBJECTIVES = {"likelihood": LikelihoodObjective, "adversarial": AdversarialObjective}
OBJECTIVES["adversarial-phased"] = PhasedAdversarialObjective  # audio-vaegan
