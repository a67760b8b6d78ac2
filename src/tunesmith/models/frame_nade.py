"""`lstm-nade`: the JSB Chorales model. An LSTM over time, a NADE over the 88 keys inside each frame.

Independent Bernoulli outputs (seq2one, seq2seq, the published RNN / LSTM / GRU rows) cannot say
"C or E but not both": every key of a frame is guessed alone, which costs about 8 nats per quarter-note
frame on JSB. Here the keys of a frame are modelled jointly, autoregressively in key order (RNN-NADE,
Boulanger-Lewandowski et al. 2012, with an LSTM, dropout and transposition augmentation):

    p(v_t | v_<t) = prod_i p(v_ti | v_t,<i, v_<t)
    p(v_ti = 1 | ...) = sigmoid(b_ti + V_i . h_ti),   h_ti = sigmoid(a_t + sum_{j<i} v_tj W_j)

where (a_t, b_t) come from the LSTM's state after frames < t (plus a direct path from frame t-1 to
b_t, because "this key sounded one frame ago" is the strongest single cue). Everything is exact: the
log-likelihood is a sum of 88 Bernoulli log-probabilities per frame, computed for all keys at once
(`nade_logits`). Frames are "sounding" rolls (T, 88) in {0, 1}: a `pianoroll` batch (onset, sustain)
is reduced to onset OR sustain, which is exactly the JSB frame (JSB merges repeated notes).

Transposition (`transpose` > 0): each training window is shifted by a random number of semitones and
the shift is an input of the LSTM (one-hot); scoring and generation use shift 0. Why an input rather
than plain augmentation: the JSB files hold every chorale transposed to C major / C minor (214 of the
229 training pieces end on a C in the bass), so a model that had to guess the key of shifted copies
would pay for it on the untransposed test pieces; as an input, the shifted copies still teach voice
leading in every key while shift 0 stays "the file's own keys". Conditioning on a constant is no
peeking: p(. | shift 0) is one fixed distribution over pieces.

Generation steps the LSTM with its state (`FrameStepper`, driven by the shared sampler) and samples
each frame key by key; `--temperature` divides every key's logit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812

from tunesmith.core.constants import PIANO_KEYS, PIANO_LOW
from tunesmith.models.base import MAX_DEPTH, Likelihood, MusicModel, check_choice, check_fraction, check_positive
from tunesmith.models.distributions import SamplingConfig, sample_bernoulli
from tunesmith.models.layers import RecurrentStepper

FRAME_OPTIONS = frozenset({"temperature", "primer"})
KEY_ORDERS = ("up", "down", "chroma")


@dataclass
class FrameNADEConfig:
    keys: int = PIANO_KEYS  # visible units per frame
    hidden_size: int = 384  # LSTM units per layer
    num_layers: int = 2
    dropout: float = 0.3  # between LSTM layers and on the LSTM output
    nade_hidden: int = 150  # NADE hidden units (per key position)
    order: str = "up"  # key order inside a frame: up (bass first), down (soprano first), chroma (by pitch class)
    transpose: int = 0  # train on windows shifted by up to +-transpose semitones, the shift an input


class FrameNADE(MusicModel):
    """LSTM over frames + NADE over the keys of each frame: exact joint likelihood (the JSB model).

    Batch: {"frames": (batch, time, 88, 2) pianoroll or (batch, time, 88) sounding, "mask": (batch, time)}."""

    name: ClassVar[str] = "lstm-nade"
    Config: ClassVar[type] = FrameNADEConfig
    data_kind: ClassVar[str] = "frames"
    likelihood: ClassVar[Likelihood] = Likelihood("exact", "frame")
    generation: ClassVar[str] = "autoregressive"
    options: ClassVar[frozenset[str]] = FRAME_OPTIONS
    cpu_threads: ClassVar[int] = 1

    def __init__(self, config: FrameNADEConfig) -> None:
        super().__init__()
        self.config = config
        k, h, n = config.keys, config.hidden_size, config.nade_hidden
        self.rnn = nn.LSTM(k + self._n_shifts(), h, config.num_layers, batch_first=True,
                           dropout=config.dropout if config.num_layers > 1 else 0.0)
        self.drop = nn.Dropout(config.dropout)
        self.to_a = nn.Linear(h, n)  # NADE hidden bias a_t
        self.to_b = nn.Linear(h, k)  # NADE visible bias b_t
        self.skip = nn.Linear(k, k, bias=False)  # frame t-1 -> b_t
        self.w = nn.Parameter(torch.randn(k, n) * 0.05)  # visible j -> hidden, for keys after j
        self.v = nn.Parameter(torch.randn(k, n) * 0.05)  # hidden -> logit of key i
        # order 'chroma': the keys by pitch class (all Cs low to high, then all C#s, ...), so that a frame's
        # harmony is decided before its voicing; a function of the config, so not stored in checkpoints
        self.register_buffer("chroma", chroma_order(k), persistent=False)

    @classmethod
    def debug_config(cls) -> dict:
        return {"hidden_size": 16, "num_layers": 2, "nade_hidden": 8, "dropout": 0.0}

    @classmethod
    def validate_config(cls, config: FrameNADEConfig) -> None:
        check_positive(config, "keys", "hidden_size", "nade_hidden")
        check_positive(config, "num_layers", maximum=MAX_DEPTH)
        check_positive(config, "transpose", minimum=0)
        check_fraction(config, "dropout")
        check_choice(config, "order", KEY_ORDERS)

    def example_batch(self, batch_size: int = 2, length: int = 12) -> dict[str, Tensor]:
        frames = (torch.rand(batch_size, length, self.config.keys, 2) < 0.05).float()
        mask = torch.ones(batch_size, length, dtype=torch.bool)
        mask[0, length // 2 :] = False
        return {"frames": frames, "mask": mask}

    # ---- likelihood -------------------------------------------------------------------------------

    def _ordered(self, x: Tensor) -> Tensor:
        """Keys (..., keys) in the model's internal order (a flip of the last axis for order='down')."""
        if self.config.order == "chroma":
            return x[..., self.chroma.to(x.device)]
        return x.flip(-1) if self.config.order == "down" else x

    def _unordered(self, x: Tensor) -> Tensor:
        """Keys (..., keys) from the internal order back to low to high (the inverse of `_ordered`)."""
        if self.config.order == "chroma":
            return x[..., torch.argsort(self.chroma).to(x.device)]
        return self._ordered(x)  # a flip is its own inverse

    def _n_shifts(self) -> int:
        return 2 * self.config.transpose + 1 if self.config.transpose else 0

    def _shift_code(self, shift: Tensor) -> Tensor:
        """shift (batch,) semitones -> one-hot (batch, 2 transpose + 1); (batch, 0) without transposition."""
        if not self.config.transpose:
            return shift.new_zeros(len(shift), 0, dtype=torch.float)
        return F.one_hot(shift + self.config.transpose, self._n_shifts()).float()

    def _biases(self, x: Tensor, shift: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x (batch, time, keys) internal order, shift (batch,) semitones (default 0) -> NADE biases
        a (b, t, nade_hidden), b (b, t, keys) for frame t from frames < t (input: x shifted right by one
        zero frame, plus the transposition code)."""
        previous = F.pad(x, (0, 0, 1, 0))[:, :-1]
        shift = torch.zeros(len(x), dtype=torch.long, device=x.device) if shift is None else shift
        code = self._shift_code(shift).unsqueeze(1).expand(-1, x.shape[1], -1)
        out, _ = self.rnn(torch.cat([previous, code], -1))
        out = self.drop(out)
        return self.to_a(out), self.to_b(out) + self.skip(previous)

    def nade_logits(self, v: Tensor, a: Tensor, b: Tensor) -> Tensor:
        """v (n, keys) in {0, 1}, a (n, nade_hidden), b (n, keys) -> logit of p(v_i = 1 | v_<i) (n, keys).

        h_i only changes after a sounding key, so a frame with m sounding keys has m + 1 distinct hidden
        vectors (segments). We build those (n, m + 1, hidden) and give key i its segment's logit: the same
        numbers as the textbook (n, keys, hidden) cumulative sum, at a fraction of the memory traffic."""
        count = v.sum(-1).long()
        most = int(count.max()) if len(v) else 0
        keys = torch.arange(v.shape[-1], device=v.device)
        sounding_first = torch.argsort(torch.where(v > 0, keys, keys + v.shape[-1]), dim=-1)[:, :most]
        real = (torch.arange(most, device=v.device) < count.unsqueeze(-1)).unsqueeze(-1)
        steps = self.w[sounding_first] * real  # (n, m, hidden): what each sounding key adds, in key order
        acts = a.unsqueeze(1) + F.pad(torch.cumsum(steps, 1), (0, 0, 1, 0))  # (n, m + 1, hidden)
        per_segment = torch.sigmoid(acts) @ self.v.T  # (n, m + 1, keys)
        segment = (torch.cumsum(v, -1) - v).long()  # sounding keys below i
        return b + per_segment.gather(1, segment.unsqueeze(1)).squeeze(1)

    def nade_log_prob(self, v: Tensor, a: Tensor, b: Tensor) -> Tensor:
        """v (n, keys) in {0, 1}, a (n, nade_hidden), b (n, keys) -> log p(v) (n,) in nats."""
        logits = self.nade_logits(v, a, b)
        return -F.binary_cross_entropy_with_logits(logits, v, reduction="none").sum(-1)

    def frame_log_likelihood(self, sounding: Tensor, mask: Tensor | None = None,
                             shift: Tensor | None = None) -> Tensor:
        """sounding (batch, time, keys) in {0, 1} -> log p(frame_t | frames_<t) (batch, time) in nats
        (0 where `mask` is False); `shift` (batch,) is the transposition code (0: the data's own keys)."""
        x = self._ordered(sounding.float())
        a, b = self._biases(x, shift)
        keep = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if mask is None else mask.bool()
        out = torch.zeros(x.shape[:2], device=x.device)
        out[keep] = self.nade_log_prob(x[keep], a[keep], b[keep])
        return out

    def loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Negative log-likelihood in nats per frame (88 keys summed), over the real frames of the batch."""
        sounding, mask = real_frames(batch)
        shift = None
        if self.training and self.config.transpose:
            real = sounding * mask.unsqueeze(-1)  # padding must not limit the shift
            sounding, shift = random_transposition(real, self.config.transpose)
        log_p = self.frame_log_likelihood(sounding, mask, shift)
        return {"loss": -log_p.sum() / mask.sum().clamp(min=1)}

    # ---- likelihood of one piece, generation --------------------------------------------------------

    @torch.no_grad()
    def log_likelihood(self, array: np.ndarray) -> tuple[float, int]:
        """Pianoroll (T, 88, 2) -> (log p of its T sounding frames in nats, T)."""
        sounding = self.to_elements(array).unsqueeze(0)
        return float(self.eval().frame_log_likelihood(sounding).sum()), sounding.shape[1]

    def to_elements(self, array: np.ndarray) -> Tensor:
        """Pianoroll (T, 88, 2) -> sounding frames (T, 88) float, the elements the sampler feeds."""
        return torch.from_numpy(np.asarray(array, dtype=bool).any(-1)).float()

    def from_elements(self, frames: Tensor) -> np.ndarray:
        """Sounding frames (T, 88) -> pianoroll (T, 88, 2) bool (consecutive frames: one held note)."""
        return sounding_to_pianoroll(frames.cpu().numpy() > 0)

    def stepper(self) -> FrameStepper:
        return FrameStepper(self)

    @torch.no_grad()
    def choose(self, biases: tuple[Tensor, Tensor], sampling: SamplingConfig,
               generator: torch.Generator | None) -> Tensor:
        """One frame per row from the NADE biases (a, b), key by key -> (batch, keys) {0, 1}, low to high."""
        a, b = biases
        acts, keys = a.clone(), []
        for i in range(self.config.keys):
            on = sample_bernoulli(b[:, i] + torch.sigmoid(acts) @ self.v[i], sampling, generator)
            acts += on.unsqueeze(-1) * self.w[i]
            keys.append(on)
        return self._unordered(torch.stack(keys, -1))


class FrameStepper(nn.Module):
    """The LSTM-NADE's incremental view: fed the frame before (batch, keys) {0, 1} in key order (a zero
    frame first), it returns the NADE biases (a, b) of the next frame in the model's internal order.
    With `shift` s (|s| <= transpose) it reads every frame rolled up by s semitones, with the code s: the
    biases are then those of the rolled next frame (the test-time transposition of `lstm-nade-mix`)."""

    def __init__(self, model: FrameNADE, shift: int = 0) -> None:
        super().__init__()
        self.model, self.core, self.shift = model.eval(), RecurrentStepper(model.rnn), shift

    def initial_state(self, batch: int, device: torch.device | str = "cpu", generator=None) -> list:
        return self.core.initial_state(batch, device)

    @torch.no_grad()
    def forward(self, previous: Tensor, state: list) -> tuple[tuple[Tensor, Tensor], list]:
        m = self.model
        previous = m._ordered(torch.roll(previous.float(), self.shift, -1))
        code = m._shift_code(torch.full((len(previous),), self.shift, dtype=torch.long, device=previous.device))
        out, state = self.core(torch.cat([previous, code], -1), state)
        return (m.to_a(out), m.to_b(out) + m.skip(previous)), state

    def frame_log_prob(self, frame: Tensor, out: tuple[Tensor, Tensor]) -> Tensor:
        """log P(frame) (batch,) in nats of a real frame (batch, keys; low to high, not shifted) under the
        step output `out` = (a, b) that `forward` returned for it: shifted and ordered as this stepper sees keys."""
        m = self.model
        return m.nade_log_prob(m._ordered(torch.roll(frame.float(), self.shift, -1)), *out)


def chroma_order(keys: int) -> Tensor:
    """Key indices (keys,) sorted by pitch class from C, then low to high (key 0 is MIDI PIANO_LOW)."""
    return torch.tensor(sorted(range(keys), key=lambda k: ((k + PIANO_LOW) % 12, k)))


def real_frames(batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """A batch's sounding frames (batch, time, keys) float and mask (batch, time) bool, cut after the last
    real frame of its longest window (the rest is padding in every window)."""
    frames = batch["frames"]
    sounding = (frames.amax(-1) if frames.dim() == 4 else frames).float()
    mask = batch.get("mask")
    mask = torch.ones(sounding.shape[:2], dtype=torch.bool) if mask is None else mask.bool()
    length = int(mask.any(0).nonzero().max()) + 1 if mask.any() else 1
    return sounding[:, :length], mask[:, :length]


def random_transposition(sounding: Tensor, max_shift: int) -> tuple[Tensor, Tensor]:
    """Shift each window (batch, time, keys) by a uniform random number of semitones in
    [-max_shift, max_shift], cut down where a note would leave the keyboard -> (shifted, shifts (batch,))."""
    active = sounding.amax(1) > 0  # (batch, keys)
    keys = torch.arange(sounding.shape[-1], device=sounding.device)
    low = torch.where(active, keys, sounding.shape[-1]).amin(-1)
    high = torch.where(active, keys, -1).amax(-1)
    shift = torch.randint(-max_shift, max_shift + 1, (len(sounding),)).to(sounding.device)
    lowest, highest = -low.clamp(max=max_shift), (sounding.shape[-1] - 1 - high).clamp(max=max_shift)
    shift = torch.minimum(torch.maximum(shift, lowest), highest)
    shifted = torch.stack([torch.roll(x, int(s), dims=-1) for x, s in zip(sounding, shift, strict=True)])
    return shifted, shift


def sounding_to_pianoroll(sounding: np.ndarray) -> np.ndarray:
    """(T, keys) bool sounding roll -> (T, keys, 2) [onset, sustain]: a key that sounds in consecutive
    frames is one held note (the JSB convention), so onset = on and not on before, sustain = on after on."""
    on = np.asarray(sounding, dtype=bool)
    before = np.zeros_like(on)
    before[1:] = on[:-1]
    return np.stack([on & ~before, on & before], axis=-1)
