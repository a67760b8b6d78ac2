"""How a network's output becomes a choice: categorical and Bernoulli draws under one sampling config.

Shared by every family (their `choose` and one-shot `sample` methods call these) and by the sampler
in `generation/sampling.py`, which drives autoregressive families step by step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from tunesmith.core.errors import UserError


@dataclass
class SamplingConfig:
    temperature: float | None = None  # > 0; None: the family's default (1: the model's distribution)
    top_k: int | None = None  # keep the k most likely tokens
    top_p: float | None = None  # keep the smallest set of tokens whose probability sums to >= p
    greedy: bool = False  # argmax instead of sampling
    min_p: float | None = None  # in (0, 1): keep tokens at least min_p x the most likely one's probability

    def __post_init__(self) -> None:
        check_min_p(self.min_p)


def check_temperature(temperature: float | None) -> None:
    """UserError unless the temperature is None (the family's default) or a finite number above 0."""
    if temperature is not None and not (math.isfinite(temperature) and temperature > 0):
        raise UserError(f"--temperature must be a finite number above 0, got {temperature}")


def check_min_p(min_p: float | None) -> None:
    """UserError unless min_p is None (off) or a number strictly between 0 and 1."""
    if min_p is not None and (isinstance(min_p, bool) or not isinstance(min_p, int | float) or not 0 < min_p < 1):
        raise UserError(f"--min-p must be a number strictly between 0 and 1, got {min_p}")


def filter_logits(logits: Tensor, cfg: SamplingConfig) -> Tensor:
    """logits (batch, vocab) -> logits with excluded tokens at -inf, divided by the temperature.

    Order: temperature, top-k, top-p, then min-p on what is left (as Hugging Face's warpers)."""
    logits = logits / max(cfg.temperature or 1.0, 1e-6)
    if cfg.top_k is not None and 0 < cfg.top_k < logits.shape[-1]:
        kth = torch.topk(logits, cfg.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if cfg.top_p is not None and 0 < cfg.top_p < 1:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop_sorted = cumulative - sorted_logits.softmax(-1) >= cfg.top_p  # keeps the token that crosses p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    if cfg.min_p is not None:
        # min-p (Nguyen et al. 2024): the cut scales with the model's confidence; on what the filters above kept
        log_probs = logits.log_softmax(-1)
        floor = log_probs.amax(-1, keepdim=True) + math.log(cfg.min_p)
        logits = logits.masked_fill(log_probs < floor, float("-inf"))
    return logits


def sample_categorical(logits: Tensor, cfg: SamplingConfig, generator: torch.Generator | None = None) -> Tensor:
    """logits (..., vocab) -> ids (...) int64."""
    if cfg.greedy:
        return logits.argmax(-1)
    flat = logits.reshape(-1, logits.shape[-1]).float()
    probs = filter_logits(flat, cfg).softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).reshape(logits.shape[:-1])


def sample_bernoulli(logits: Tensor, cfg: SamplingConfig, generator: torch.Generator | None = None) -> Tensor:
    """Independent units: logits (...) -> {0, 1} float (...), p = sigmoid(logit / temperature)."""
    if cfg.greedy:
        return (logits > 0).float()
    p = torch.sigmoid(logits.float() / max(cfg.temperature or 1.0, 1e-6))
    return (torch.rand(p.shape, generator=generator, device=p.device) < p).float()


def is_default(cfg: SamplingConfig) -> bool:
    """True when no sampling option was asked for (families may then keep their own default draw)."""
    return (cfg.temperature is None and cfg.top_k is None and cfg.top_p is None and cfg.min_p is None
            and not cfg.greedy)
