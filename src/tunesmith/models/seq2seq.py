"""`seq2one` and `seq2seq`: the piano-roll LSTMs of the AIDL-UPC seed (TECHNICAL-NOTES section 5).

Frames are `pianoroll` steps (88 keys x [onset, sustain]), flattened to 176 units in the seed's layout
(column 2k onset, 2k+1 sustain of key k). Every unit is an independent Bernoulli given the past.

- seq2one: an LSTM reads frames and a head (Linear 256, ReLU, Dropout 0.5, as the seed) predicts the
  next frame. `loss_positions="last"` trains on the window's last frame only (the seed's seq2one);
  "all" trains every position of the window (each prefix is a seq2one example).
- seq2seq: an encoder LSTM reads the first `chunk` frames of a window, a decoder LSTM writes the next
  `chunk` one frame at a time (data.window must be 2 x chunk). The decoder's next input is the true
  frame with probability `ratio`, else its own thresholded prediction (scheduled sampling), with
  ratio = teacher_forcing x (1 - progress) ** teacher_forcing_power, progress = epoch / max_epochs,
  set by the training loop through `self.progress`. In eval mode the ratio is 1, so validation figures
  and the JSB likelihood condition on the true previous frames.

Losses: BCE-with-logits or focal loss (Lin et al. 2017) per unit; reduction "sum" sums the 176 units
of a frame and averages over frames (nats per frame for BCE), "mean" averages over units too.
Precision, recall, F1 and density of the thresholded predictions are returned with every loss, so the
loop logs them per step (train) and per epoch (valid).

Generation (`Seq2SeqStepper`, driven by the shared sampler) reads the piece in the same chunks as the
likelihood, starts from zeros, noise (N(0, 1) initial LSTM state, as the seed's "random") or a primer,
runs free (its own frames fed back), decides each unit by `threshold` or Bernoulli sampling (where
`--temperature` applies), and repairs the onset/sustain encoding (`repair_frame`) frame by frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812

from tunesmith.core.constants import PIANO_KEYS
from tunesmith.core.errors import UserError
from tunesmith.models.base import MAX_DEPTH, Likelihood, MusicModel, check_choice, check_fraction, check_positive
from tunesmith.models.distributions import SamplingConfig, sample_bernoulli
from tunesmith.models.layers import RecurrentStepper

UNITS = 2 * PIANO_KEYS


@dataclass
class Seq2SeqConfig:
    architecture: str = "seq2seq"  # seq2seq | seq2one (set by the registered name)
    hidden_size: int = 512
    num_layers: int = 2
    dropout: float = 0.2  # between LSTM layers
    head_hidden: int = 256
    head_dropout: float = 0.5
    chunk: int = 32  # seq2seq: frames encoded and frames decoded (data.window = 2 x chunk)
    loss_positions: str = "all"  # seq2one: all | last
    loss: str = "bce"  # bce | focal
    focal_alpha: float = 0.7  # weight of the positive class in the focal loss
    focal_gamma: float = 2.0
    reduction: str = "sum"  # sum (over the units of a frame) | mean
    teacher_forcing: float = 0.5  # ratio at the first epoch
    teacher_forcing_power: float = 2.0
    threshold: float = 0.5  # probability above which a unit is on (metrics, fed-back frames, generation)
    sampling: str = "threshold"  # generation: threshold | bernoulli
    init: str = "zeros"  # generation without a primer: zeros | noise

    CHOICES = {"architecture": ("seq2seq", "seq2one"), "loss_positions": ("all", "last"),
               "loss": ("bce", "focal"), "reduction": ("sum", "mean"),
               "sampling": ("threshold", "bernoulli"), "init": ("zeros", "noise")}


def focal_loss(logits: Tensor, targets: Tensor, alpha: float, gamma: float) -> Tensor:
    """Per-unit focal loss, same shape as logits: -alpha_t (1 - p_t)^gamma log p_t with p = sigmoid(logit),
    p_t = p if the target is 1 else 1 - p, alpha_t = alpha if the target is 1 else 1 - alpha."""
    p = torch.sigmoid(logits)
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")  # = -log p_t, stably
    return alpha_t * (1 - p_t) ** gamma * bce


def roll_metrics(logits: Tensor, targets: Tensor, weights: Tensor, threshold: float) -> dict[str, Tensor]:
    """Precision, recall, F1 and note density of thresholded predictions over frames with weight 1.

    logits, targets (batch, time, units); weights (batch, time) in {0, 1}."""
    w = weights.unsqueeze(-1)
    pred = (torch.sigmoid(logits) > threshold).float() * w
    true = targets * w
    hits, n_pred, n_true = (pred * true).sum(), pred.sum(), true.sum()
    precision, recall = hits / n_pred.clamp(min=1), hits / n_true.clamp(min=1)
    units = w.sum().clamp(min=1) * logits.shape[-1]
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-8)
    return {"precision": precision, "recall": recall, "f1": f1,
            "density": n_pred / units, "target_density": n_true / units}


def repair_frame(before, onset, sustain):
    """One frame's repair (bool numpy arrays or tensors of one shape): a key with both bits keeps the
    onset only; a sustain with nothing sounding in the frame before (`before`) becomes an onset."""
    sustain = sustain & ~onset
    orphan = sustain & ~before
    return onset | orphan, sustain & ~orphan


def repair(roll: np.ndarray) -> np.ndarray:
    """(T, keys, 2) [onset, sustain] -> a valid roll, frame by frame (the seed's `cleanSeq`)."""
    roll = np.asarray(roll, dtype=bool)
    out = np.zeros_like(roll)
    before = np.zeros(roll.shape[1:-1], dtype=bool)
    for t in range(len(roll)):  # sequential: a repaired frame is the "before" of the next one
        out[t, ..., 0], out[t, ..., 1] = repair_frame(before, roll[t, ..., 0], roll[t, ..., 1])
        before = out[t, ..., 0] | out[t, ..., 1]
    return out


def sounding_to_units(sounding: Tensor) -> Tensor:
    """(batch, time, 88) sounding {0, 1} -> (batch, time, 176) units, JSB convention (a key sounding in
    consecutive frames is one held note): onset = on and not on before, sustain = on and on before."""
    before = F.pad(sounding, (0, 0, 1, 0))[:, :-1]
    return torch.stack([sounding * (1 - before), sounding * before], dim=-1).flatten(2)


class _Head(nn.Sequential):
    """The seed's classifier: hidden -> head_hidden -> ReLU -> Dropout -> 176 logits."""

    def __init__(self, cfg: Seq2SeqConfig) -> None:
        super().__init__(nn.Linear(cfg.hidden_size, cfg.head_hidden), nn.ReLU(), nn.Dropout(cfg.head_dropout),
                         nn.Linear(cfg.head_hidden, UNITS))


class Seq2Seq(MusicModel):
    """Encoder-decoder LSTM over piano-roll frames; a window's first half predicts its second half."""

    name: ClassVar[str] = "seq2seq"
    Config: ClassVar[type] = Seq2SeqConfig
    data_kind: ClassVar[str] = "frames"
    likelihood: ClassVar[Likelihood] = Likelihood("exact", "frame")
    generation: ClassVar[str] = "autoregressive"
    options: ClassVar[frozenset[str]] = frozenset({"temperature", "primer"})
    cpu_threads: ClassVar[int] = 1

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        self.config = config
        self.progress = 0.0  # epoch / max_epochs, set by the training loop before each epoch
        drop = config.dropout if config.num_layers > 1 else 0.0
        self.decoder = nn.LSTM(UNITS, config.hidden_size, config.num_layers, batch_first=True, dropout=drop)
        self.head = _Head(config)
        if config.architecture == "seq2seq":
            self.encoder = nn.LSTM(UNITS, config.hidden_size, config.num_layers, batch_first=True,
                                   dropout=drop)

    @classmethod
    def defaults(cls) -> dict:
        return {"architecture": "seq2seq"}

    @classmethod
    def debug_config(cls) -> dict:
        return {"hidden_size": 16, "num_layers": 2, "head_hidden": 8, "chunk": 4}

    @classmethod
    def validate_config(cls, config: Seq2SeqConfig) -> None:
        for key, values in Seq2SeqConfig.CHOICES.items():
            check_choice(config, key, values)
        check_positive(config, "hidden_size", "head_hidden", "chunk")
        check_positive(config, "num_layers", maximum=MAX_DEPTH)
        check_positive(config, "focal_gamma", "teacher_forcing_power", minimum=0)
        check_fraction(config, "dropout", "head_dropout", "focal_alpha", "teacher_forcing", "threshold")

    def generation_options(self) -> frozenset[str]:
        """--temperature only means something when units are sampled, not thresholded."""
        return self.options if self.config.sampling == "bernoulli" else self.options - {"temperature"}

    def example_batch(self, batch_size: int = 2, length: int | None = None) -> dict[str, Tensor]:
        length = length or 2 * self.config.chunk
        frames = repair((torch.rand(batch_size * length, PIANO_KEYS, 2) < 0.05).numpy())
        frames = torch.from_numpy(frames).float().reshape(batch_size, length, PIANO_KEYS, 2)
        return {"frames": frames, "mask": torch.ones(batch_size, length, dtype=torch.bool)}

    # ---- teacher forcing ----------------------------------------------------------------------------

    def set_progress(self, progress: float) -> None:
        self.progress = progress

    def teacher_forcing_ratio(self) -> float:
        """1 in eval mode; in training teacher_forcing x (1 - progress) ** teacher_forcing_power."""
        if not self.training:
            return 1.0
        cfg = self.config
        return cfg.teacher_forcing * max(0.0, 1.0 - self.progress) ** cfg.teacher_forcing_power

    def _binarise(self, logits: Tensor) -> Tensor:
        return (torch.sigmoid(logits) > self.config.threshold).float()

    def decode(self, targets: Tensor, state: tuple[Tensor, Tensor] | None, ratio: float) -> Tensor:
        """Decoder logits (batch, time, 176) for `targets` (batch, time, 176), input 0 a zero frame; input
        t+1 is targets[t] with probability `ratio` (per sequence and step), else the thresholded
        prediction of frame t. Ratio 1 runs the LSTM once over the whole shifted sequence."""
        if ratio >= 1.0:
            out, _ = self.decoder(F.pad(targets, (0, 0, 1, 0))[:, :-1], state)
            return self.head(out)
        frame, logits = torch.zeros_like(targets[:, 0]), []
        for t in range(targets.shape[1]):
            out, state = self.decoder(frame.unsqueeze(1), state)
            logits.append(self.head(out[:, 0]))
            teacher = torch.rand(targets.shape[0], 1, device=targets.device) < ratio
            frame = torch.where(teacher, targets[:, t], self._binarise(logits[-1].detach()))
        return torch.stack(logits, 1)

    def encode(self, source: Tensor) -> tuple[Tensor, Tensor]:
        """source (batch, time, 176) -> the encoder's final (h, c); a zero frame leads (as in the seed)."""
        _, state = self.encoder(F.pad(source, (0, 0, 1, 0)))
        return state

    def forward(self, units: Tensor, ratio: float | None = None) -> tuple[Tensor, slice]:
        """units (batch, time, 176) -> (logits for the predicted frames, the slice of time they predict)."""
        ratio = self.teacher_forcing_ratio() if ratio is None else ratio
        chunk = self.config.chunk
        if self.config.architecture == "seq2one":
            return self.decode(units, None, 1.0), slice(0, units.shape[1])
        if units.shape[1] != 2 * chunk:
            raise UserError(f"seq2seq windows must be 2 x chunk = {2 * chunk} frames (data.window), "
                            f"got {units.shape[1]}")
        return self.decode(units[:, chunk:], self.encode(units[:, :chunk]), ratio), slice(chunk, 2 * chunk)

    # ---- loss ---------------------------------------------------------------------------------------

    def loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """The configured loss over the predicted real frames, plus "nll" (BCE nats per frame, 176 units)
        and precision / recall / f1 / density at `threshold`."""
        units = batch["frames"].flatten(2)
        mask = batch.get("mask", torch.ones(units.shape[:2], dtype=torch.bool, device=units.device)).float()
        logits, span = self(units)
        targets, weights = units[:, span], mask[:, span]
        if self.config.architecture == "seq2one" and self.config.loss_positions == "last":
            last = (weights.cumsum(1) == weights.sum(1, keepdim=True)) & (weights > 0)
            weights = weights * last.float()
        frames = weights.sum().clamp(min=1)
        bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        per_unit = bce if self.config.loss == "bce" else focal_loss(
            logits, targets, self.config.focal_alpha, self.config.focal_gamma)
        loss = (per_unit.sum(-1) * weights).sum() / frames
        if self.config.reduction == "mean":
            loss = loss / UNITS
        nll = (bce.sum(-1) * weights).sum() / frames
        metrics = roll_metrics(logits.detach(), targets, weights, self.config.threshold)
        return {"loss": loss, "nll": nll, **metrics}

    # ---- JSB likelihood -----------------------------------------------------------------------------

    @torch.no_grad()
    def frame_log_likelihood(self, sounding: Tensor, mask: Tensor | None = None) -> Tensor:
        """sounding (batch, time, 88) -> log q(frame_t | frames_<t) (batch, time) in nats, where q reads
        the past in the JSB convention (`sounding_to_units`) and a key sounds if its onset or its sustain
        unit fires: log P(off) = log(1 - p_onset) + log(1 - p_sustain). seq2one reads the whole past;
        seq2seq encodes the previous chunk (zeros before the first) and teacher-forces the current one."""
        units = sounding_to_units(sounding.float())
        logits = self._all_frame_logits(units).reshape(*units.shape[:2], PIANO_KEYS, 2)
        log_off = -F.softplus(logits).sum(-1)  # (batch, time, 88)
        log_on = torch.log(-torch.expm1(log_off.clamp(max=-1e-7)))
        log_p = (sounding * log_on + (1 - sounding) * log_off).sum(-1)
        return log_p if mask is None else log_p * mask

    def _all_frame_logits(self, units: Tensor) -> Tensor:
        if self.config.architecture == "seq2one":
            return self.decode(units, None, 1.0)
        batch, time, chunk = units.shape[0], units.shape[1], self.config.chunk
        padded = F.pad(units, (0, 0, 0, -time % chunk))
        chunks = padded.reshape(batch, -1, chunk, UNITS)
        sources = F.pad(chunks, (0, 0, 0, 0, 1, 0))[:, :-1]  # chunk k is encoded from chunk k - 1
        state = self.encode(sources.flatten(0, 1))
        logits = self.decode(chunks.flatten(0, 1), state, 1.0)
        return logits.reshape(batch, -1, UNITS)[:, :time]

    # ---- likelihood of one piece, generation ---------------------------------------------------------

    @torch.no_grad()
    def log_likelihood(self, array: np.ndarray) -> tuple[float, int]:
        """Pianoroll (T, 88, 2) -> (log q of its T sounding frames in nats, T): the JSB figure per piece."""
        sounding = torch.from_numpy(np.asarray(array, dtype=bool).any(-1)).float().unsqueeze(0)
        return float(self.eval().frame_log_likelihood(sounding).sum()), sounding.shape[1]

    def to_elements(self, array: np.ndarray) -> Tensor:
        """Pianoroll (T, 88, 2) -> repaired units (T, 176) float, the elements the sampler feeds."""
        return torch.from_numpy(repair(array)).float().flatten(1)

    def from_elements(self, units: Tensor) -> np.ndarray:
        """Units (T, 176) -> a valid pianoroll (T, 88, 2) bool."""
        return repair(units.reshape(-1, PIANO_KEYS, 2).cpu().numpy() > 0)

    def stepper(self) -> Seq2SeqStepper:
        return Seq2SeqStepper(self)

    def choose(self, out: tuple[Tensor, Tensor], sampling: SamplingConfig,
               generator: torch.Generator | None) -> Tensor:
        """out = (logits (batch, 176), sounding frame before (batch, 88)) -> the repaired frame (batch, 176)."""
        logits, before = out
        if self.config.sampling == "threshold":
            on = torch.sigmoid(logits) > self.config.threshold
        else:
            on = sample_bernoulli(logits, sampling, generator) > 0
        onset, sustain = repair_frame(before, on[:, 0::2], on[:, 1::2])
        return torch.stack([onset, sustain], -1).flatten(1).float()


class Seq2SeqStepper(nn.Module):
    """Incremental view of seq2one / seq2seq: fed the frame before (batch, 176) (a zero frame first),
    returns (logits of the next frame, sounding keys of the frame before). seq2seq reads the piece in
    chunks: at each chunk start its decoder restarts from the encoding of the previous chunk (zeros
    before the first), exactly as `frame_log_likelihood` conditions."""

    def __init__(self, model: Seq2Seq) -> None:
        super().__init__()
        self.model, self.core = model.eval(), RecurrentStepper(model.decoder)

    def initial_state(self, batch: int, device: torch.device | str = "cpu", generator=None) -> dict:
        cfg = self.model.config
        if cfg.init == "noise":
            size = (batch, cfg.hidden_size)
            decoder = [(torch.randn(size, generator=generator).to(device),
                        torch.randn(size, generator=generator).to(device)) for _ in range(cfg.num_layers)]
        else:
            decoder = self.core.initial_state(batch, device)
        return {"decoder": decoder, "chunk": [], "started": False}

    @torch.no_grad()
    def forward(self, previous: Tensor, state: dict) -> tuple[tuple[Tensor, Tensor], dict]:
        model, decoder, chunk = self.model, state["decoder"], list(state["chunk"])
        step_input = previous
        if model.config.architecture == "seq2seq":
            if state["started"]:
                chunk.append(previous)
            if not state["started"] or len(chunk) == model.config.chunk:
                source = torch.stack(chunk, 1) if chunk else previous.new_zeros(
                    len(previous), model.config.chunk, UNITS)
                if chunk or model.config.init == "zeros":
                    h, c = model.encode(source)
                    decoder = list(zip(h, c, strict=True))
                chunk, step_input = [], torch.zeros_like(previous)
        out, decoder = self.core(step_input, decoder)
        before = (previous.reshape(len(previous), PIANO_KEYS, 2) > 0).any(-1)
        return (model.head(out), before), {"decoder": decoder, "chunk": chunk, "started": True}


class Seq2One(Seq2Seq):
    """LSTM that reads a window of piano-roll frames and predicts the next frame (the seed's seq2one)."""

    name: ClassVar[str] = "seq2one"

    @classmethod
    def defaults(cls) -> dict:
        return {"architecture": "seq2one"}
