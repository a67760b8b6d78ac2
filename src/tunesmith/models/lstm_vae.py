"""`lstm-vae`: a recurrent VAE over token windows (the egrillot "SimpleLSTM+VAE" on `grid` melodies).

Batch (data kind "tokens"): {"tokens": int64 (B, window + 1)}, windows of [BOS] + piece + [EOS],
right-padded with `pad_id`. x_0 is given; x_1..x_W are encoded and reconstructed.

- Encoder: embedding -> BiLSTM over x_1..x_W (padding packed away) -> both directions' last states
  -> Linear -> (mu, logvar) of a diagonal Gaussian q(z | x), `latent_dim` (the seed's 128).
- Decoder: a GRU (the seed's) or LSTM whose initial state is tanh(Linear(z)), fed the previous token
  (teacher forcing) and, with `z_every_step`, z at every step too (so the latent cannot fade along
  the window); word dropout replaces a share of the decoder's input tokens by <pad> (Bowman et al.
  2016), so the decoder must lean on z. Linear over the vocabulary.
- Loss: cross-entropy of x_1..x_W + KL, with linear KL annealing and free bits (`vae.py`); logs "recon"
  (nats per token), "kl" (nats per window), "nelbo" (nats per token), "active_units", "accuracy"
  (teacher-forced reconstruction accuracy per token). In eval mode "loss" is the plain -ELBO per token.

Departures from the seed: the seed's decoder read the same sequence it encoded with no shift, so it
could copy its input; here it predicts each token from the ones before it and z. The seed had no KL
schedule, and its KL ended at 0.015 nats: a collapsed latent that the decoder ignored.

Generation is one-shot (`sample`): z ~ p(z) per piece (per window of `window` tokens for longer
pieces, each window continuing from the last token of the one before: the windowed model that
`log_likelihood` scores; consecutive windows' latents correlated by `window_correlation`); p(z) is
N(0, I), or with `prior_components` a Gaussian mixture fitted to the training posteriors after training
(`vae.MixturePrior`: N(0, I) has holes no training window covers, where the decoder writes keyless,
chromatic lines). Then the decoder runs token by token with its own recurrent state (no
re-feeding), drawing through `sample_categorical` (temperature, top-k, top-p; default: the model's
distribution). <pad>/<bos>/<eos> are never drawn. It draws `plan.bars * tokens_per_bar` tokens (grid:
16 per 4/4 bar at 4 steps per quarter); the caller cuts at the bar line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812
from torch.nn.utils.rnn import pack_padded_sequence

from tunesmith.core.errors import UserError
from tunesmith.models.base import (
    Likelihood,
    MusicModel,
    SamplePlan,
    check_choice,
    check_fraction,
    check_positive,
)
from tunesmith.models.distributions import SamplingConfig, sample_categorical
from tunesmith.models.layers import RecurrentStepper
from tunesmith.models.vae import LatentTerms, MixturePrior, negative_elbo, reparameterize


@dataclass
class LSTMVAEConfig:
    vocab_size: int = 0  # filled from the representation
    pad_id: int = 0  # filled from the representation
    bos_id: int = 1  # <bos> and <eos> of tunesmith vocabularies (never drawn in generation)
    eos_id: int = 2
    window: int = 64  # tokens per latent code (set to data.window): scoring windows a piece by it
    embed_dim: int = 64
    encoder_hidden: int = 256  # per direction
    latent_dim: int = 128
    decoder_hidden: int = 256
    decoder_layers: int = 1
    cell: str = "gru"  # decoder cell: gru (the seed's) | lstm
    z_every_step: bool = True  # concatenate z to the decoder input at every step
    word_dropout: float = 0.0  # share of decoder input tokens replaced by <pad> in training
    dropout: float = 0.1  # on the decoder output
    kl_warmup_steps: int = 2000  # optimizer steps of linear KL annealing (0: weight 1 from the start)
    free_bits: float = 0.0  # nats per latent dimension below which the KL is not pushed down
    tokens_per_bar: int = 16  # tokens drawn per requested bar (grid: 4 x steps_per_quarter)
    elbo_samples: int = 8  # posterior draws per window when scoring (seeded: repeatable)
    # prior sampling of pieces longer than a window: consecutive windows' latents follow
    # z_k+1 = rho z_k + sqrt(1 - rho^2) eps, so every z is still N(0, I) but neighbours stay close in key
    # and style (0: independent windows, which wander between keys; 1: one latent for the whole piece)
    window_correlation: float = 0.0
    # 0: prior samples draw z from N(0, I); K > 0: from a K-component Gaussian mixture fitted to the
    # training windows' posteriors after training (`tunesmith fit-prior`; N(0, I) until fitted)
    prior_components: int = 0


class LSTMVAE(MusicModel):
    """Recurrent VAE over token windows (egrillot SimpleLSTM+VAE): BiLSTM encoder -> z -> GRU/LSTM decoder."""

    name: ClassVar[str] = "lstm-vae"
    Config: ClassVar[type] = LSTMVAEConfig
    data_kind: ClassVar[str] = "tokens"
    likelihood: ClassVar[Likelihood] = Likelihood("bound", "token")
    generation: ClassVar[str] = "one-shot"
    options: ClassVar[frozenset[str]] = frozenset({"temperature", "top_k", "top_p"})
    cpu_threads: ClassVar[int] = 1  # recurrent layers: one thread per process is fastest here

    def __init__(self, config: LSTMVAEConfig) -> None:
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.embed_dim)
        self.encoder = nn.LSTM(c.embed_dim, c.encoder_hidden, batch_first=True, bidirectional=True)
        self.to_posterior = nn.Linear(2 * c.encoder_hidden, 2 * c.latent_dim)
        rnn_cls = nn.LSTM if c.cell == "lstm" else nn.GRU
        z_in = c.latent_dim if c.z_every_step else 0
        self.decoder = rnn_cls(c.embed_dim + z_in, c.decoder_hidden, c.decoder_layers, batch_first=True)
        n_states = c.decoder_layers * (2 if c.cell == "lstm" else 1)
        self.to_state = nn.Linear(c.latent_dim, n_states * c.decoder_hidden)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.decoder_hidden, c.vocab_size)
        self.latent = LatentTerms(c.kl_warmup_steps, c.free_bits)
        self.prior = MixturePrior(c.latent_dim, c.prior_components) if c.prior_components else None

    # ---- registry and tests ---------------------------------------------------------------------

    @classmethod
    def debug_config(cls) -> dict:
        return {"window": 12, "embed_dim": 8, "encoder_hidden": 16, "latent_dim": 4, "decoder_hidden": 16,
                "kl_warmup_steps": 10, "free_bits": 0.1, "elbo_samples": 2}

    @classmethod
    def debug_dims(cls) -> dict:
        return {"vocab_size": 24, "pad_id": 0}

    @classmethod
    def validate_config(cls, config: LSTMVAEConfig) -> None:
        check_positive(config, "vocab_size", "window", "embed_dim", "encoder_hidden", "latent_dim",
                       "decoder_hidden", "decoder_layers", "tokens_per_bar", "elbo_samples")
        check_positive(config, "kl_warmup_steps", "free_bits", "prior_components", minimum=0)
        check_fraction(config, "dropout", "word_dropout", "window_correlation")
        check_choice(config, "cell", ("gru", "lstm"))
        for key in ("pad_id", "bos_id", "eos_id"):
            if not 0 <= getattr(config, key) < config.vocab_size:
                raise UserError(f"model config {key} must be a token id below vocab_size "
                                f"({config.vocab_size}), got {getattr(config, key)!r}")

    def example_batch(self, batch_size: int = 2, length: int | None = None) -> dict[str, Tensor]:
        """Random windows {"tokens": (B, length + 1)} (length: the config's window)."""
        length = length or self.config.window
        tokens = torch.randint(3, self.config.vocab_size, (batch_size, length + 1))
        tokens[:, 0] = self.config.bos_id
        return {"tokens": tokens}

    # ---- the network ----------------------------------------------------------------------------

    def posterior(self, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Tokens x_1..x_W (B, W) int64 -> (mu, logvar) (B, latent_dim); padding is left out."""
        lengths = (targets != self.config.pad_id).sum(1).clamp(min=1).cpu()
        packed = pack_padded_sequence(self.embed(targets), lengths, batch_first=True, enforce_sorted=False)
        _, (h_n, _) = self.encoder(packed)
        mu, logvar = self.to_posterior(torch.cat([h_n[0], h_n[1]], dim=-1)).chunk(2, dim=-1)
        return mu, logvar

    def initial_state(self, z: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """z (B, D) -> the decoder's initial state, as nn.GRU / nn.LSTM take it ((layers, B, H) each)."""
        c = self.config
        states = torch.tanh(self.to_state(z)).reshape(len(z), -1, c.decoder_hidden).transpose(0, 1)
        if c.cell == "lstm":
            h, cell = states.chunk(2, dim=0)
            return h.contiguous(), cell.contiguous()
        return states.contiguous()

    def decode_logits(self, inputs: Tensor, z: Tensor) -> Tensor:
        """Teacher forcing: input tokens (B, W) and z (B, D) -> logits (B, W, vocab) for the next tokens."""
        x = self.embed(inputs)
        if self.config.z_every_step:
            x = torch.cat([x, z[:, None].expand(-1, x.shape[1], -1)], dim=-1)
        hidden, _ = self.decoder(x, self.initial_state(z))
        return self.head(self.drop(hidden))

    def _word_dropout(self, inputs: Tensor) -> Tensor:
        rate = self.config.word_dropout
        if not self.training or rate == 0:
            return inputs
        drop = torch.rand(inputs.shape, device=inputs.device) < rate
        drop[:, 0] = False  # keep the first token: it says where in the piece the window starts
        return inputs.masked_fill(drop, self.config.pad_id)

    def loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Training: (CE + annealed free-bits KL) per token; eval: -ELBO per token. Logs in the docstring."""
        tokens = batch["tokens"]
        if tokens.shape[1] != self.config.window + 1:  # scoring and decoding use the config's window
            raise UserError(f"model config window ({self.config.window}) must equal data.window "
                            f"({tokens.shape[1] - 1})")
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        mu, logvar = self.posterior(targets)
        logits = self.decode_logits(self._word_dropout(inputs), reparameterize(mu, logvar))
        mask = targets != self.config.pad_id
        nll = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")[mask].sum()
        shaped_kl, kl, logs = self.latent(mu, logvar)
        n_tokens = mask.sum().clamp(min=1)
        nelbo = negative_elbo(nll, kl) / n_tokens
        correct = (logits.argmax(-1) == targets)[mask].float().sum() / n_tokens
        loss = (nll + shaped_kl) / n_tokens if self.training and torch.is_grad_enabled() else nelbo
        return {"loss": loss, "recon": (nll / n_tokens).detach(), "nelbo": nelbo.detach(),
                "accuracy": correct, **logs}

    # ---- likelihood -----------------------------------------------------------------------------

    @torch.no_grad()
    def log_likelihood(self, array: np.ndarray) -> tuple[float, int]:
        """ELBO, a lower bound on log p (not the exact log-probability), of a framed piece [bos, tokens...,
        eos] (n,): the piece is cut into windows of `window` predicted tokens (each window's first token is
        the previous one's last, given), each scored as E_q[log p(x | z)] - KL(q || p) with `elbo_samples`
        seeded posterior draws. Returns (ELBO in nats, n - 1 tokens)."""
        seq = torch.as_tensor(np.asarray(array), dtype=torch.long)
        chunks = self.windows(seq)
        mu, logvar = self.eval().posterior(chunks[:, 1:])
        generator = torch.Generator().manual_seed(0)
        mask = chunks[:, 1:] != self.config.pad_id
        recon = 0.0
        for _ in range(self.config.elbo_samples):
            logits = self.decode_logits(chunks[:, :-1], reparameterize(mu, logvar, generator))
            log_p = logits.log_softmax(-1).gather(-1, chunks[:, 1:, None]).squeeze(-1)
            recon += float(log_p[mask].sum()) / self.config.elbo_samples
        _, kl, _ = self.latent(mu, logvar)
        return recon - float(kl), len(seq) - 1

    def windows(self, seq: Tensor) -> Tensor:
        """A framed piece (n,) -> (chunks, window + 1) overlapping by one token, the last right-padded."""
        w = self.config.window
        rows = [seq[start : start + w + 1] for start in range(0, max(len(seq) - 1, 1), w)]
        return torch.stack([F.pad(r, (0, w + 1 - len(r)), value=self.config.pad_id) for r in rows])

    # ---- latents and generation -------------------------------------------------------------------

    @torch.no_grad()
    def batch_posterior(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """A batch as `loss` takes it -> (mu, logvar) (B, D) and whether each window is whole (B,) bool:
        no padding, so it does not stand for a piece's end (what `tunesmith fit-prior` fits)."""
        targets = batch["tokens"][:, 1:]
        mu, logvar = self.eval().posterior(targets)
        return mu, logvar, (targets != self.config.pad_id).all(1)

    @torch.no_grad()
    def encode_pieces(self, arrays: list[np.ndarray]) -> Tensor:
        """Encoded pieces (unframed token arrays) -> posterior means (n, latent_dim) of their first windows."""
        seqs = [torch.as_tensor(np.r_[self.config.bos_id, np.asarray(a, np.int64)]) for a in arrays]
        first = torch.stack([self.windows(s)[0] for s in seqs])
        return self.eval().posterior(first[:, 1:])[0]

    def forward(self, tokens: Tensor, z: Tensor | None = None) -> Tensor:
        """The decoder as a language model: tokens (B, T) -> next-token logits (B, T, vocab) given z
        (B, D) (default 0, the prior's mode); `stepper` is its incremental view."""
        return self.decode_logits(tokens, self._latent_or_mode(z, len(tokens)))

    def _latent_or_mode(self, z: Tensor | None, batch_size: int) -> Tensor:
        return z if z is not None else torch.zeros(batch_size, self.config.latent_dim)

    def stepper(self, quantize: bool = False, z: Tensor | None = None) -> LatentStepper:
        """The decoder one token at a time with its recurrent state, given z (default 0)."""
        return LatentStepper(self, quantize, z)

    @torch.no_grad()
    def decode_latents(self, z: Tensor, n_tokens: int, sampling: SamplingConfig,
                       generator: torch.Generator | None = None, start: Tensor | None = None) -> list[np.ndarray]:
        """Latents (n, D) -> n token arrays (n_tokens,) int64, drawn one token at a time after `start`
        (n,) (default <bos>: a piece's first window)."""
        stepper = self.eval().stepper(z=z)
        state = stepper.initial_state(len(z))
        token = start if start is not None else torch.full((len(z),), self.config.bos_id, dtype=torch.long)
        banned = sorted({self.config.pad_id, self.config.bos_id, self.config.eos_id})
        out = [torch.zeros(len(z), 0, dtype=torch.long)]
        for _ in range(n_tokens):
            logits, state = stepper(token, state)
            logits[:, banned] = float("-inf")
            token = sample_categorical(logits, sampling, generator)
            out.append(token[:, None])
        return list(torch.cat(out, dim=1).numpy())

    @torch.no_grad()
    def sample(self, plan: SamplePlan, generator: torch.Generator) -> list[np.ndarray]:
        """`plan.n` pieces of `plan.bars * tokens_per_bar` tokens (n_tokens,) int64: a prior latent for each
        window of `window` tokens (N(0, I), or the fitted mixture with one component per piece), each
        window continuing from the last token of the one before (the windowed model `log_likelihood` scores)."""
        n_tokens, pieces, start, u = plan.bars * self.config.tokens_per_bar, [], None, None
        components = self.prior.draw_components(plan.n, generator) if self.prior is not None else None
        for begin in range(0, n_tokens, self.config.window):
            u = self.next_window_latent(u, plan.n, generator)
            z = self.prior.place(u, components) if self.prior is not None else u
            count = min(self.config.window, n_tokens - begin)
            pieces.append(np.stack(self.decode_latents(z, count, plan.sampling, generator, start)))
            start = torch.from_numpy(pieces[-1][:, -1])
        return list(np.concatenate(pieces, axis=1)) if pieces else [np.zeros(0, np.int64)] * plan.n

    def next_window_latent(self, z: Tensor | None, n: int, generator: torch.Generator) -> Tensor:
        """The standard normal draw (n, D) of the next window given the previous one (None for the first):
        N(0, I) marginally, correlated `window_correlation` with `z` (the fitted prior places it)."""
        eps = torch.randn(n, self.config.latent_dim, generator=generator)
        rho = self.config.window_correlation
        return eps if z is None else rho * z + (1 - rho**2) ** 0.5 * eps


class LatentStepper(nn.Module):
    """Feeds the decoder one token per call with its recurrent state, z fixed per piece.

    State: (per-layer recurrent state as `RecurrentStepper` keeps it, z (B, D)).
    """

    def __init__(self, model: LSTMVAE, quantize: bool = False, z: Tensor | None = None) -> None:
        super().__init__()
        self.embed, self.head, self.config = model.embed, model.head, model.config
        self.to_state, self.z, self.latent_or_mode = model.initial_state, z, model._latent_or_mode
        self.core = RecurrentStepper(model.decoder, quantize)
        self.eval()

    def initial_state(self, batch_size: int, device: torch.device | str = "cpu", generator=None):
        z = self.latent_or_mode(self.z, batch_size).to(device)
        state = self.to_state(z)
        if self.config.cell == "lstm":
            h, c = state
            return [(h[i], c[i]) for i in range(len(h))], z
        return [state[i] for i in range(len(state))], z

    @torch.no_grad()
    def forward(self, tokens: Tensor, state) -> tuple[Tensor, tuple]:
        """tokens (B,) int64 -> logits (B, vocab), new state."""
        rnn_state, z = state
        x = self.embed(tokens)
        if self.config.z_every_step:
            x = torch.cat([x, z], dim=-1)
        hidden, rnn_state = self.core(x, rnn_state)
        return self.head(hidden), (rnn_state, z)
