"""Sampling, separate from the networks and shared by every autoregressive model.

`filter_logits` applies temperature, top-k and top-p (nucleus) to logits; `sample_sequence` drives any
stepper (an object with `initial_state(batch, device)` and `forward(tokens, state) -> (logits, state)`)
one token at a time, feeding only the newest token: the recurrent state (or KV cache) carries the past.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class SamplingConfig:
    temperature: float = 1.0  # > 0; 1 keeps the model's distribution, lower is more conservative
    top_k: int | None = None  # keep the k most likely tokens
    top_p: float | None = None  # keep the smallest set of tokens whose probability sums to >= p
    greedy: bool = False  # argmax instead of sampling


def filter_logits(logits: Tensor, cfg: SamplingConfig) -> Tensor:
    """logits (batch, vocab) -> logits with excluded tokens at -inf, divided by the temperature."""
    logits = logits / max(cfg.temperature, 1e-6)
    if cfg.top_k is not None and 0 < cfg.top_k < logits.shape[-1]:
        kth = torch.topk(logits, cfg.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if cfg.top_p is not None and 0 < cfg.top_p < 1:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop_sorted = cumulative - sorted_logits.softmax(-1) >= cfg.top_p  # keeps the token that crosses p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next(logits: Tensor, cfg: SamplingConfig, generator: torch.Generator | None = None) -> Tensor:
    """logits (batch, vocab) -> token ids (batch,)."""
    if cfg.greedy:
        return logits.argmax(-1)
    probs = filter_logits(logits.float(), cfg).softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def sample_sequence(stepper, primer: Tensor, n_steps: int, cfg: SamplingConfig,
                    generator: torch.Generator | None = None, stop_id: int | None = None,
                    banned_ids: list[int] | None = None) -> Tensor:
    """Continue `primer` (batch, P >= 1) int64 by up to `n_steps` tokens -> (batch, n) new tokens.

    The primer is fed once, token by token, to build the state; after that each step feeds only the
    token just sampled. Rows that emit `stop_id` are padded with `stop_id` afterwards; sampling ends
    early when every row has stopped. `banned_ids` (e.g. padding, BOS) are never sampled.
    """
    state = stepper.initial_state(primer.shape[0], primer.device)
    for t in range(primer.shape[1]):
        logits, state = stepper(primer[:, t], state)
    out, done = [], torch.zeros(primer.shape[0], dtype=torch.bool, device=primer.device)
    for _ in range(n_steps):
        if banned_ids:
            logits[:, banned_ids] = float("-inf")
        token = sample_next(logits, cfg, generator)
        if stop_id is not None:
            token = torch.where(done, torch.full_like(token, stop_id), token)
            done |= token == stop_id
        out.append(token)
        if stop_id is not None and bool(done.all()):
            break
        logits, state = stepper(token, state)
    return torch.stack(out, dim=1) if out else primer.new_zeros(primer.shape[0], 0)
