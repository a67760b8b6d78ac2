"""A GAN over token sequences: recurrent generator, LSTM discriminator, Gumbel-softmax relaxation.

Why Gumbel-softmax rather than policy gradient (SeqGAN): the straight-through Gumbel-softmax sample is
a one-hot token in the forward pass and a differentiable softmax in the backward pass, so the
discriminator's gradient reaches the generator directly, with no reward variance, rollouts or critic
to tune; on short windows (32-64 tokens) it trains stably on a CPU.

The generator is the same next-token network as `lstm` (so generation uses the shared sampler and its
incremental state). It continues a real prefix of `prefix_len` tokens, free-running with Gumbel
samples; the discriminator scores whole windows (real vs prefix + generated). The generator loss adds
`mle_weight` x teacher-forced cross-entropy on real windows, which keeps it from collapsing onto a few
tokens (the seed GAN emitted 100 notes in one octave). Diversity of generated windows (distinct tokens
and distinct 4-grams per window, relative to real windows) is logged every step, so a collapse shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812

from tunesmith.models.base import (
    MAX_DEPTH,
    TOKEN_OPTIONS,
    Likelihood,
    MusicModel,
    check_choice,
    check_fraction,
    check_positive,
)
from tunesmith.models.layers import masked_cross_entropy
from tunesmith.models.rnn import RNNConfig, RNNLanguageModel, TokenStepper


@dataclass
class TokenGANConfig:
    vocab_size: int = 0  # filled from the representation
    pad_id: int = 0
    embed_dim: int = 128
    hidden_size: int = 256  # generator
    num_layers: int = 2
    dropout: float = 0.1
    cell: str = "lstm"
    disc_embed_dim: int = 64
    disc_hidden_size: int = 256
    prefix_len: int = 8  # real tokens the generator continues
    tau: float = 1.0  # Gumbel-softmax temperature
    mle_weight: float = 1.0  # weight of the teacher-forced likelihood term in the generator loss
    label_smoothing: float = 0.9  # target for real windows in the discriminator loss (one-sided)
    d_steps: int = 1  # discriminator updates per batch
    g_steps: int = 1  # generator updates per batch


class TokenDiscriminator(nn.Module):
    """(batch, time, vocab) one-hot or relaxed tokens -> (batch,) real/fake logits."""

    def __init__(self, cfg: TokenGANConfig) -> None:
        super().__init__()
        self.embed = nn.Linear(cfg.vocab_size, cfg.disc_embed_dim, bias=False)
        self.rnn = nn.LSTM(cfg.disc_embed_dim, cfg.disc_hidden_size, batch_first=True)
        self.out = nn.Linear(2 * cfg.disc_hidden_size, 1)

    def forward(self, onehot: Tensor) -> Tensor:
        hidden, _ = self.rnn(self.embed(onehot))
        features = torch.cat([hidden[:, -1], hidden.mean(1)], dim=-1)  # last state + mean over time
        return self.out(features).squeeze(-1)


class TokenGAN(MusicModel):
    """GAN over token sequences: an LSTM generator (straight-through Gumbel-softmax) against an LSTM critic.

    Batch: {"tokens": int64 (batch, window + 1)} of real windows (same as the `lstm` family).
    Its generator is an `lstm` network, so it has that family's exact likelihood and sampler."""

    name: ClassVar[str] = "token-gan"
    Config: ClassVar[type] = TokenGANConfig
    objective: ClassVar[str] = "adversarial"
    data_kind: ClassVar[str] = "tokens"
    likelihood: ClassVar[Likelihood] = Likelihood("exact", "token")
    generation: ClassVar[str] = "autoregressive"
    options: ClassVar[frozenset[str]] = TOKEN_OPTIONS
    cpu_threads: ClassVar[int] = 1

    def __init__(self, config: TokenGANConfig) -> None:
        super().__init__()
        self.config = config
        self.generator = RNNLanguageModel(RNNConfig(
            vocab_size=config.vocab_size, pad_id=config.pad_id, embed_dim=config.embed_dim,
            hidden_size=config.hidden_size, num_layers=config.num_layers, dropout=config.dropout, cell=config.cell))
        self.discriminator = TokenDiscriminator(config)

    @classmethod
    def debug_config(cls) -> dict:
        return {"embed_dim": 8, "hidden_size": 16, "num_layers": 1, "disc_embed_dim": 8,
                "disc_hidden_size": 16, "prefix_len": 3}

    @classmethod
    def validate_config(cls, config: TokenGANConfig) -> None:
        check_positive(config, "vocab_size", "embed_dim", "hidden_size", "disc_embed_dim", "disc_hidden_size",
                       "prefix_len")
        check_positive(config, "num_layers", "d_steps", "g_steps", maximum=MAX_DEPTH)
        check_fraction(config, "dropout")
        check_choice(config, "cell", ("lstm", "gru"))
        check_positive(config, "tau", minimum=1e-3)
        check_positive(config, "mle_weight", minimum=0)
        check_fraction(config, "label_smoothing")

    @classmethod
    def debug_dims(cls) -> dict:
        return {"vocab_size": 24, "pad_id": 0}

    def example_batch(self, batch_size: int = 2, length: int = 12) -> dict[str, Tensor]:
        return {"tokens": torch.randint(1, self.config.vocab_size, (batch_size, length + 1))}

    def generator_parameters(self):
        return self.generator.parameters()

    def discriminator_parameters(self):
        return self.discriminator.parameters()

    def stepper(self, quantize: bool = False) -> TokenStepper:
        return self.generator.stepper(quantize)

    def choose(self, logits: Tensor, sampling, generator: torch.Generator | None) -> Tensor:
        return self.generator.choose(logits, sampling, generator)

    def log_likelihood(self, array) -> tuple[float, int]:
        return self.generator.log_likelihood(array)

    def forward(self, tokens: Tensor) -> Tensor:
        """Teacher-forced generator logits (batch, time, vocab), as for `lstm`."""
        return self.generator(tokens)

    def rollout(self, tokens: Tensor) -> Tensor:
        """Real prefix + free-running straight-through Gumbel samples: (batch, window, vocab) one-hot."""
        window = tokens[:, 1:]
        prefix = window[:, : self.config.prefix_len]
        g = self.generator
        out, state = g.rnn(g.embed(prefix))
        logits = g.head(out[:, -1])
        pieces = [F.one_hot(prefix, self.config.vocab_size).float()]
        for _ in range(window.shape[1] - prefix.shape[1]):
            sample = F.gumbel_softmax(logits, tau=self.config.tau, hard=True)  # (batch, vocab)
            pieces.append(sample[:, None])
            out, state = g.rnn((sample @ g.embed.weight)[:, None], state)
            logits = g.head(out[:, -1])
        return torch.cat(pieces, dim=1)

    def discriminator_loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        real = F.one_hot(batch["tokens"][:, 1:], self.config.vocab_size).float()
        with torch.no_grad():
            fake = self.rollout(batch["tokens"])
        real_logits, fake_logits = self.discriminator(real), self.discriminator(fake)
        smooth = torch.full_like(real_logits, self.config.label_smoothing)
        loss = (F.binary_cross_entropy_with_logits(real_logits, smooth)
                + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
        accuracy = ((real_logits > 0).float().mean() + (fake_logits < 0).float().mean()) / 2
        return {"loss": loss, "accuracy": accuracy}

    def generator_loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        fake = self.rollout(batch["tokens"])
        fake_logits = self.discriminator(fake)
        adversarial = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
        nll = self.generator.loss(batch)["loss"]
        diversity = window_diversity(fake.argmax(-1)[:, self.config.prefix_len :])
        return {"loss": adversarial + self.config.mle_weight * nll, "adversarial": adversarial, "nll": nll,
                **{k: torch.tensor(v) for k, v in diversity.items()}}

    @torch.no_grad()
    def validation_metrics(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Teacher-forced NLL ("loss", nats/token) and accuracy, plus diversity of free-running samples
        relative to the real windows (1.0 = as diverse as real music)."""
        logits = self.generator(batch["tokens"][:, :-1])
        nll, accuracy = masked_cross_entropy(logits, batch["tokens"][:, 1:], self.config.pad_id)
        fake = window_diversity(self.rollout(batch["tokens"]).argmax(-1)[:, self.config.prefix_len :])
        real = window_diversity(batch["tokens"][:, 1 + self.config.prefix_len :])
        relative = {f"{k}_vs_real": torch.tensor(fake[k] / max(real[k], 1e-9)) for k in fake}
        return {"loss": nll, "accuracy": accuracy, **relative}


def window_diversity(tokens: Tensor) -> dict[str, float]:
    """Mean over windows of (distinct tokens / length) and (distinct 4-grams / number of 4-grams)."""
    unigram, fourgram = [], []
    for row in tokens.tolist():
        unigram.append(len(set(row)) / max(len(row), 1))
        grams = [tuple(row[i : i + 4]) for i in range(len(row) - 3)]
        fourgram.append(len(set(grams)) / max(len(grams), 1))
    return {"distinct_tokens": sum(unigram) / len(unigram), "distinct_4grams": sum(fourgram) / len(fourgram)}
