"""Decoder-only Transformer over token representations (`notes`, `grid`, `events`), Music Transformer style.

token embedding -> dropout -> n_layer pre-norm blocks (x + attn(ln(x)), x + mlp(ln(x))) -> ln -> linear
head tied to the embedding. Every position is a next-token prediction; the loss is nats per token.

Positions (`position`):
- `relative` (default): Huang et al. 2018 "Music Transformer": a learned embedding per head and per
  distance 0..block_size-1 is dotted with each query, S_rel[i, j] = q_i . E[i - j], and added to
  q_i . k_j before the softmax. The memory-efficient *skewing* gets S_rel from one (C, N) product
  q @ E^T (no (C, N, head_dim) gather). Default because it is the Music Transformer scheme the
  toolkit promises, it learns a free score per distance (beats, bars) where ALiBi only decays with
  distance, and RoPE's lead in one run did not hold up side by side: bach REMI tokens, lstm-bach's
  split, 2 x 128, 2 heads, window 128, batch 16, 1 thread, valid nats/token after 1,200 steps, seeds
  0 / 1 / 2: relative 1.180 / 1.149 / 1.206 (mean 1.178), rope 1.131 / 1.176 / 1.257 (mean 1.188);
  after 400 steps (seed 0) relative 1.519, rope 1.431, alibi 1.654 (`tunesmith train
  configs/transformer-bach.yaml --set model.config.position=P --set model.config.n_layer=2
  --set model.config.n_embd=128 --set model.config.n_head=2 --set model.config.block_size=128
  --set data.window=128 --set trainer.max_steps=1200 --set trainer.seed=S`). A tie within the
  seed-to-seed spread (0.06 relative, 0.13 rope), so the choice rests on the reasons above. Its
  cost: 1.4-1.8x the CPU of a rope / alibi training step (one more (C, N) product and the skew per
  layer; 4 x 256, batch 32 x 256, profiled on one thread), so `position: rope` is the cheaper choice
  where training time is short. A checkpoint's saved config names its scheme, so old checkpoints
  load as they were.
- `rope`: rotary embeddings on q and k (Su et al. 2021).
- `alibi`: a fixed linear penalty -slope_h * distance per head (Press et al. 2022), no parameters.
All three depend only on distances, so attention is defined for any length: a query sees at most
the last `block_size` positions (itself included), a sliding window. The KV-cache stepper and the
full forward compute that same function, so a cache that keeps the last block_size - 1 keys and
slides is exact (no re-encoding; learned absolute positions, which would need it, are not offered).

Generation: `stepper()` keeps per-layer K/V in a buffer of 2 x block_size positions, appends one
position per token and, when full, moves the last block_size - 1 to the front (amortised O(1)).
Measured by `benchmarks/generation.py` (4 x 256, block_size 1,024, batch 1, one thread of a loaded
2-core box, results in benchmarks/results/generation.md): a cached step at a full 1,024-token context
is 61x (relative), 51x (rope: its re-feed takes the fused attention path, no bias) and 74x (alibi)
faster than re-feeding the window. The shared sampler may mask the logits per step with the
representation's grammar (constrained decoding, `representations/grammar.py`); the family needs
nothing for it.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812

from tunesmith.core.errors import UserError
from tunesmith.models.base import TOKEN_OPTIONS, Likelihood, MusicModel, check_choice, check_fraction, check_positive
from tunesmith.models.distributions import SamplingConfig, sample_categorical
from tunesmith.models.layers import masked_cross_entropy

POSITIONS = ("relative", "rope", "alibi")


@dataclass
class TransformerConfig:
    vocab_size: int = 0  # filled from the representation
    pad_id: int = 0  # filled from the representation
    block_size: int = 256  # attention window in tokens (the data window should not exceed it)
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    mlp_ratio: int = 4  # hidden width of each block's MLP = mlp_ratio * n_embd
    dropout: float = 0.1
    position: str = "relative"  # relative | rope | alibi


@dataclass
class KVCache:
    """Per-layer keys / values (batch, head, capacity, head_dim), `length` of them valid, and the
    absolute position of the next token (only RoPE needs it: it rotates keys once, when cached)."""

    keys: list[Tensor]
    values: list[Tensor]
    length: int = 0
    position: int = 0
    window: int = 0  # block_size: how many positions a query sees, itself included

    def make_room(self, new: int) -> int:
        """Slide so `new` more positions fit: keep the last window - 1. Returns the keys kept."""
        capacity, keep = self.keys[0].shape[2], self.window - 1
        if keep + new > capacity:
            raise ValueError(f"at most {capacity - keep} positions can be fed at once, got {new}")
        if self.length + new > capacity:
            for buf in (*self.keys, *self.values):
                buf[:, :, :keep] = buf[:, :, self.length - keep:self.length].clone()
            self.length = keep
        return self.length


def _distances_descending(table: Tensor, n_keys: int) -> Tensor:
    """(H, W, hd) by distance -> (H, n_keys, hd) for distances n_keys-1 .. 0 (zeros past W - 1)."""
    flipped = table.flip(1)
    width = table.shape[1]
    if n_keys <= width:
        return flipped[:, width - n_keys:]
    return F.pad(flipped, (0, 0, n_keys - width, 0))


def _skew(rel: Tensor) -> Tensor:
    """rel (B, H, C, N), column m for distance N-1-m, queries the last C of N positions -> (B, H, C, N)
    indexed by key j. Row i must move by C-1-i columns: pad one zero column on the left, flatten,
    drop the first C elements and re-view; entries for future keys wrap into junk (masked later)."""
    b, h, c, n = rel.shape
    padded = F.pad(rel, (1, 0)).reshape(b, h, c * (n + 1))
    return padded[:, :, c:].reshape(b, h, c, n)


def skewed_relative_logits(q: Tensor, table: Tensor, n_keys: int) -> Tensor:
    """q (B, H, C, hd) for the last C of `n_keys` positions, table (H, W, hd) by distance ->
    (B, H, C, n_keys): out[..., i, j] = q_i . E[N - C + i - j] where that distance is in 0..W-1."""
    return _skew(q @ _distances_descending(table, n_keys).transpose(-1, -2))


def alibi_slopes(n_head: int) -> Tensor:
    """(H,) geometric slopes 2^(-8 h / H), h = 1..H, as in the ALiBi paper."""
    return torch.tensor([2.0 ** (-8.0 * (h + 1) / n_head) for h in range(n_head)])


def rope_rotate(x: Tensor, positions: Tensor) -> Tensor:
    """x (B, H, C, hd) rotated pairwise (first half with second half) by angle position * 10000^(-2i/hd)."""
    half = x.shape[-1] // 2
    freqs = 10000.0 ** (-torch.arange(half, dtype=torch.float64) / half)
    angles = positions.to(torch.float64)[:, None] * freqs[None]  # float64: exact at long positions
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


class Attention(nn.Module):
    """Causal self-attention over a sliding window of `block_size` positions, with one position scheme."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.n_head, self.head_dim = config.n_head, config.n_embd // config.n_head
        self.window, self.position, self.dropout = config.block_size, config.position, config.dropout
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        if config.position == "relative":
            self.rel = nn.Parameter(0.02 * torch.randn(config.n_head, config.block_size, self.head_dim))
        if config.position == "alibi":
            self.register_buffer("slopes", alibi_slopes(config.n_head), persistent=False)

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0) -> Tensor:
        """x (B, C, n_embd) for the next C positions -> (B, C, n_embd); `cache` holds earlier K/V."""
        b, c, _ = x.shape
        q, k, v = (t.view(b, c, self.n_head, self.head_dim).transpose(1, 2) for t in self.qkv(x).split(x.shape[-1], -1))
        start = cache.position if cache is not None else 0
        if self.position == "rope":
            positions = torch.arange(start, start + c, device=x.device)
            q, k = rope_rotate(q, positions), rope_rotate(k, positions)
        if cache is not None:
            k, v = self._append(cache, layer, k, v)
        bias = self._bias(q, k.shape[2])
        drop = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=drop)
        return self.proj(out.transpose(1, 2).reshape(b, c, -1))

    def _append(self, cache: KVCache, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Write the new K/V after the `cache.length` kept ones; view of every key so far."""
        n, c = cache.length, k.shape[2]
        cache.keys[layer][:, :, n:n + c] = k
        cache.values[layer][:, :, n:n + c] = v
        return cache.keys[layer][:, :, :n + c], cache.values[layer][:, :, :n + c]

    def _bias(self, q: Tensor, n_keys: int) -> Tensor | None:
        """Additive scores (B or 1, H or 1, C, N): position terms / sqrt(hd), -inf outside the window;
        None when there is nothing to add (RoPE, one query that sees every key: the sampler's step)."""
        c = q.shape[2]
        distance = (torch.arange(n_keys - c, n_keys, device=q.device)[:, None]
                    - torch.arange(n_keys, device=q.device)[None])  # (C, N): query minus key position
        if self.position == "relative":
            # scale q (C x hd numbers), not the (C x N) scores: same product, one pass less
            bias = skewed_relative_logits(q * self.head_dim ** -0.5, self.rel, n_keys)
        elif self.position == "alibi":
            bias = -self.slopes[:, None, None] * distance.to(q.dtype)
        elif c == 1 and n_keys <= self.window:
            return None
        else:
            bias = torch.zeros(1, 1, c, n_keys, dtype=q.dtype, device=q.device)
        if c == 1 and n_keys <= self.window:  # a step: every kept key is inside the window
            return bias
        return bias.masked_fill((distance < 0) | (distance >= self.window), float("-inf"))


class Block(nn.Module):
    """Pre-norm residual block: x + drop(attn(ln(x))), then x + drop(mlp(ln(x)))."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(config.n_embd), nn.LayerNorm(config.n_embd)
        self.attn = Attention(config)
        hidden = config.mlp_ratio * config.n_embd
        self.mlp = nn.Sequential(nn.Linear(config.n_embd, hidden), nn.GELU(), nn.Linear(hidden, config.n_embd))
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0) -> Tensor:
        x = x + self.drop(self.attn(self.ln1(x), cache, layer))
        return x + self.drop(self.mlp(self.ln2(x)))


class TransformerLM(MusicModel):
    """Decoder-only Music Transformer over token sequences: relative (or RoPE / ALiBi) attention, KV cache.

    Batch: {"tokens": int64 (batch, window + 1)}; inputs are [:-1], targets [1:]."""

    name: ClassVar[str] = "transformer"
    Config: ClassVar[type] = TransformerConfig
    data_kind: ClassVar[str] = "tokens"
    likelihood: ClassVar[Likelihood] = Likelihood("exact", "token")
    generation: ClassVar[str] = "autoregressive"
    options: ClassVar[frozenset[str]] = TOKEN_OPTIONS

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.head.weight = self.embed.weight  # weight tying: one matrix reads and writes tokens
        self.apply(self._init_weights)
        for block in self.blocks:  # GPT-2: residual projections scaled so the sum's variance stays put
            for proj in (block.attn.proj, block.mlp[2]):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    @classmethod
    def debug_config(cls) -> dict:
        return {"block_size": 16, "n_layer": 2, "n_head": 2, "n_embd": 16, "dropout": 0.0}

    @classmethod
    def debug_dims(cls) -> dict:
        return {"vocab_size": 24, "pad_id": 0}

    @classmethod
    def validate_config(cls, config: TransformerConfig) -> None:
        check_positive(config, "vocab_size", "block_size", "n_layer", "n_head", "n_embd", "mlp_ratio")
        check_fraction(config, "dropout")
        check_choice(config, "position", POSITIONS)
        if config.n_embd % config.n_head:
            raise UserError(f"model config n_embd ({config.n_embd}) must be a multiple of n_head ({config.n_head})")
        if config.position == "rope" and (config.n_embd // config.n_head) % 2:
            raise UserError("model config n_embd / n_head must be even for position: rope")

    def example_batch(self, batch_size: int = 2, length: int = 12) -> dict[str, Tensor]:
        """A random batch of the shape `loss` expects (tests and benchmarks)."""
        return {"tokens": torch.randint(1, self.config.vocab_size, (batch_size, length + 1))}

    def decays(self, param: Tensor) -> bool:
        """Weight decay as nanoGPT: on matrices (linear weights, the tied embedding); never on biases, norms
        or the 3-D relative-position tables (decay would pull every distance's score to zero)."""
        return param.dim() == 2

    def forward(self, tokens: Tensor, cache: KVCache | None = None) -> Tensor:
        """tokens (batch, C) int64 -> logits (batch, C, vocab). Without `cache`: positions 0..C-1, each
        attending to the last block_size of them; with it: the C positions after the cached ones."""
        x = self.drop(self.embed(tokens))
        for layer, block in enumerate(self.blocks):
            x = block(x, cache, layer)
        if cache is not None:
            cache.length += tokens.shape[1]
            cache.position += tokens.shape[1]
        return self.head(self.ln_f(x))

    def empty_cache(self, batch_size: int, device: torch.device | str = "cpu") -> KVCache:
        """Room for 2 x block_size positions per layer (slides every block_size + 1 tokens)."""
        cfg = self.config
        shape = (batch_size, cfg.n_head, 2 * cfg.block_size, cfg.n_embd // cfg.n_head)
        dtype = self.embed.weight.dtype
        zeros = lambda: [torch.zeros(shape, device=device, dtype=dtype) for _ in self.blocks]  # noqa: E731
        return KVCache(zeros(), zeros(), window=cfg.block_size)

    def forward_cached(self, tokens: Tensor, cache: KVCache) -> Tensor:
        """The next C <= block_size + 1 tokens (batch, C) through the cache -> logits (batch, C, vocab)."""
        cache.make_room(tokens.shape[1])
        return self(tokens, cache)

    def loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Cross-entropy in nats per predicted token, and accuracy."""
        tokens = batch["tokens"]
        loss, accuracy = masked_cross_entropy(self(tokens[:, :-1]), tokens[:, 1:], self.config.pad_id)
        return {"loss": loss, "accuracy": accuracy}

    @torch.no_grad()
    def log_likelihood(self, array: np.ndarray) -> tuple[float, int]:
        """Framed piece [bos, tokens..., eos] (n,) -> (log p of tokens 1..n-1 given the ones before, n - 1).

        Long pieces go through the KV cache in chunks of block_size (memory O(block_size^2)), the
        same sliding window the sampler uses, so the score is of the distribution generation draws from.
        """
        seq = torch.as_tensor(np.asarray(array), dtype=torch.long).unsqueeze(0)
        model, total = self.eval(), 0.0
        cache = model.empty_cache(1, seq.device)
        inputs, targets = seq[:, :-1], seq[:, 1:]
        for start in range(0, inputs.shape[1], self.config.block_size):
            end = start + self.config.block_size
            log_p = model.forward_cached(inputs[:, start:end], cache).log_softmax(-1)
            total += float(log_p.gather(-1, targets[:, start:end, None]).sum())
        return total, targets.shape[1]

    def stepper(self, quantize: bool = False) -> TransformerStepper:
        """An incremental view with a KV cache for the shared sampler (int8 linear layers if `quantize`)."""
        return TransformerStepper(self, quantize)

    def choose(self, logits: Tensor, sampling: SamplingConfig, generator: torch.Generator | None) -> Tensor:
        """Next token ids (batch,) from logits (batch, vocab)."""
        return sample_categorical(logits, sampling, generator)


class TransformerStepper(nn.Module):
    """Feeds one token per call through the KV cache: logits (batch, vocab) per step, no re-feeding."""

    def __init__(self, model: TransformerLM, quantize: bool = False) -> None:
        super().__init__()
        net = model
        if quantize:  # int8 weights: the step reads every weight once, so bytes are the cost
            from torch.ao.quantization import quantize_dynamic

            net = quantize_dynamic(copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8)
        self.net = net.eval()

    def initial_state(self, batch_size: int, device: torch.device | str = "cpu", generator=None) -> KVCache:
        return self.net.empty_cache(batch_size, device)

    @torch.no_grad()
    def forward(self, tokens: Tensor, state: KVCache) -> tuple[Tensor, KVCache]:
        """tokens (batch,) int64 -> logits (batch, vocab), the cache with this token appended."""
        return self.net.forward_cached(tokens[:, None], state)[:, -1], state
