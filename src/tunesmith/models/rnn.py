"""LSTM and GRU next-token models over token representations (`notes`, `grid`, `events`).

Embedding -> stacked LSTM/GRU -> dropout -> linear over the vocabulary. Trained on every position
(`loss_positions="all"`), or, like the seed projects' seq2one windows, only on the last position of each
window (`loss_positions="last"`): one config option, same code path. Generation steps the network one
token at a time with its hidden state (`RecurrentStepper`), never re-feeding the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from tunesmith.models.base import (
    MAX_DEPTH,
    TOKEN_OPTIONS,
    Likelihood,
    MusicModel,
    check_choice,
    check_fraction,
    check_positive,
)
from tunesmith.models.distributions import SamplingConfig, sample_categorical
from tunesmith.models.layers import RecurrentStepper, State, masked_cross_entropy


@dataclass
class RNNConfig:
    vocab_size: int = 0  # filled from the representation
    pad_id: int = 0  # filled from the representation
    embed_dim: int = 128
    hidden_size: int = 512
    num_layers: int = 3
    dropout: float = 0.2
    cell: str = "lstm"  # lstm | gru
    loss_positions: str = "all"  # all | last (seq2one, as the seed projects trained)


class RNNLanguageModel(MusicModel):
    """LSTM next-token model over token sequences (notes, grid, events): embedding, stacked LSTM, softmax.

    Batch: {"tokens": int64 (batch, window + 1)}; inputs are [:-1], targets [1:]."""

    name: ClassVar[str] = "lstm"
    Config: ClassVar[type] = RNNConfig
    data_kind: ClassVar[str] = "tokens"
    loss_weights: ClassVar[bool] = True  # data.end_weight
    likelihood: ClassVar[Likelihood] = Likelihood("exact", "token")
    generation: ClassVar[str] = "autoregressive"
    options: ClassVar[frozenset[str]] = TOKEN_OPTIONS
    cpu_threads: ClassVar[int] = 1  # recurrent training measured fastest on one thread per process here

    def __init__(self, config: RNNConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.embed_dim)
        rnn_cls = nn.LSTM if config.cell == "lstm" else nn.GRU
        inner_dropout = config.dropout if config.num_layers > 1 else 0.0
        self.rnn = rnn_cls(config.embed_dim, config.hidden_size, config.num_layers,
                           batch_first=True, dropout=inner_dropout)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)

    @classmethod
    def defaults(cls) -> dict:
        """Config values this registered name sets before the user's (the GRU name picks GRU cells)."""
        return {"cell": "lstm"}

    @classmethod
    def debug_config(cls) -> dict:
        return {"embed_dim": 8, "hidden_size": 16, "num_layers": 2, "dropout": 0.0}

    @classmethod
    def debug_dims(cls) -> dict:
        return {"vocab_size": 24, "pad_id": 0}

    @classmethod
    def validate_config(cls, config: RNNConfig) -> None:
        check_positive(config, "vocab_size", "embed_dim", "hidden_size")
        check_positive(config, "num_layers", maximum=MAX_DEPTH)
        check_fraction(config, "dropout")
        check_choice(config, "cell", ("lstm", "gru"))
        check_choice(config, "loss_positions", ("all", "last"))

    def example_batch(self, batch_size: int = 2, length: int = 12) -> dict[str, Tensor]:
        """A random batch of the shape `loss` expects (tests and benchmarks)."""
        return {"tokens": torch.randint(1, self.config.vocab_size, (batch_size, length + 1))}

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens (batch, time) int64 -> logits (batch, time, vocab)."""
        hidden, _ = self.rnn(self.embed(tokens))
        return self.head(self.drop(hidden))

    def loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Cross-entropy in nats per predicted token, and accuracy."""
        tokens = batch["tokens"]
        logits = self(tokens[:, :-1])
        targets, weights = tokens[:, 1:], batch.get("weights")  # weights (batch, time): per target, optional
        if self.config.loss_positions == "last":
            logits, targets = logits[:, -1:], targets[:, -1:]
            weights = None if weights is None else weights[:, -1:]
        loss, accuracy = masked_cross_entropy(logits, targets, self.config.pad_id, weights)
        return {"loss": loss, "accuracy": accuracy}

    @torch.no_grad()
    def log_likelihood(self, array: np.ndarray) -> tuple[float, int]:
        """Framed piece [bos, tokens..., eos] (n,) -> (log p of tokens 1..n-1 given the ones before, n - 1)."""
        seq = torch.as_tensor(np.asarray(array), dtype=torch.long).unsqueeze(0)
        log_p = self.eval()(seq[:, :-1]).log_softmax(-1).gather(-1, seq[:, 1:, None])
        return float(log_p.sum()), seq.shape[1] - 1

    def stepper(self, quantize: bool = False) -> TokenStepper:
        """An incremental-state view of this network for sampling (see `generation.sampling`)."""
        return TokenStepper(self, quantize)

    def choose(self, logits: Tensor, sampling: SamplingConfig, generator: torch.Generator | None) -> Tensor:
        """Next token ids (batch,) from logits (batch, vocab)."""
        return sample_categorical(logits, sampling, generator)


class TokenStepper(nn.Module):
    """Feeds one token per call and keeps the recurrent state: logits (batch, vocab) per step."""

    def __init__(self, model: RNNLanguageModel, quantize: bool = False) -> None:
        super().__init__()
        self.embed, self.head = model.embed, model.head
        self.core = RecurrentStepper(model.rnn, quantize)
        if quantize:
            from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
            from torch.ao.quantization import default_dynamic_qconfig

            head = torch.nn.utils.skip_init(nn.Linear, model.head.in_features, model.head.out_features)
            head.load_state_dict(model.head.state_dict())
            head.qconfig = default_dynamic_qconfig
            self.head = DynamicLinear.from_float(head)
        self.eval()

    def initial_state(self, batch_size: int, device: torch.device | str = "cpu", generator=None) -> State:
        return self.core.initial_state(batch_size, device)

    @torch.no_grad()
    def forward(self, tokens: Tensor, state: State) -> tuple[Tensor, State]:
        """tokens (batch,) int64 -> logits (batch, vocab), new state."""
        hidden, state = self.core(self.embed(tokens), state)
        return self.head(hidden), state


class GRULanguageModel(RNNLanguageModel):
    """The same next-token model with GRU cells (the seed's second model)."""

    name: ClassVar[str] = "gru"

    @classmethod
    def defaults(cls) -> dict:
        return {"cell": "gru"}
