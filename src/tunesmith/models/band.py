"""`band`: five instruments from a chain of networks in one checkpoint (the egrillot multitrack system).

One model holds the whole chain, so one checkpoint file, one `generate`, one provenance record:
- the shared window autoencoder (`window_ae.WindowCodec`: each group's 2-bar window <-> a latent z),
- the latent predictors (`latent_predictor.LatentPredictors`: piano z_t -> z_{t+1}, every other group
  (w_t, z_{t+1}) -> w_{t+1}, each seeing the band at t), Gaussian outputs,
- a start distribution: a mixture of diagonal Gaussians over the five latents of one window (5 x D),
  fitted by maximum likelihood to the training windows' latents, so a piece without a primer starts
  from a window whose instruments belong together (the seed started from N(0, 0.001^2) noise); with
  `start_pattern` its sounding groups follow the training windows' joint pattern (`band_start.py`).

Training runs in the one training loop, in two stages inside one run, switched by the model's own step
count (a buffer: saved, so a resumed run keeps its stage): for the first `ae_steps` optimizer steps
only the autoencoder learns; after that the predictors and the start distribution learn too, on the
autoencoder's latents with the gradient stopped (the autoencoder keeps refining its reconstruction).
Validation always scores every term, so `best.ckpt` is never a checkpoint with untrained predictors.
A second run can retrain the predictors on a finished run's autoencoder, frozen (`codec_from`, with
`train_codec: false`; recipe `band-5-predictors.yaml`): the joint run's predictors chase latents that move
while the autoencoder learns, and ended no better than predicting the mean (MSE / variance 1.05 for piano),
where a ridge regression on the frozen latents reaches 0.77.

Batch (data kind "frames", `multitrack` representation, data.window = 2 x window, data.stride =
window): {"frames": (B, 2 x window, 5, 128) velocities, "mask": (B, 2 x window)}: consecutive windows
t and t+1 of a piece (with `context`, on the piece's window grid, plus "history" (B, n_context)). Loss =
reconstruction of window t (BCE nats per instrument-window + latent penalty, `window_ae.py`) + predictor NLL
(nats per dimension) + start NLL (nats per dimension) (+ with `gate` the gate's BCE, nats per pair).

Generation (one-shot, `sample`; `generation/band.py` writes the five tracks): a start window (from the
start distribution, or the last window of a multitrack primer), then the predictors step window by
window, sampling their Gaussians (`--temperature`, default `temperature` = 1, scales their std: below 1
the chain settles towards the blurred mean window and thins out; at 1 it grows a little denser along a
piece, 1.2 x over 16 windows for band-5), and every window is decoded by the rule of
`band_decoding.py` (`decoding`: "expected", per window and instrument the most probable units, as many as
the calibrated probabilities sum to; "threshold", per-instrument thresholds calibrated on the training
data; "sample", Bernoulli onsets at the model's odds, the first band-5's rule, which scatters notes). Velocities
come from per-instrument, per-pitch and per-step tables measured on the training data (`band_decoding`).
With `feedback` the next step starts from the encoding of the window just written instead of the latent
drawn; measured mid-training it made the melodic groups fade to silence within 6 windows, so it is off.
`voicing` and `harmony` (band_decoding.py) keep each melodic part in one register with its usual number of
voices and rank its pitches by the band's pooled pitch classes per bar; the chain decodes all windows at once
so a part's register follows the whole piece. `presence` adds a "plays in the next window" coin per group
before its latent (latent_predictor.py; a silent group's latent is the encoding of an empty window): tried
for band-5 and not shipped (it lowered piano presence in continuations). `context` K (default 0) lets the
predictors read which groups sounded in the last K + 1 windows and before (latent_predictor.py); they train in
the training loop like the rest: the model asks for window pairs on each piece's window grid that carry the piece
up to window t (`piece_history`, `data/piece_history.py`: batch key "history", `context_features` of which groups
sounded in each window, the function the chain reads), and with `gate` the gate's BCE is added ("gate_bce"; the
gate learns at `GATE_LR` x the rate, `learning_rate_scale`). Recipe `band-5-context.yaml` grows band-5 into one
(`trainer.init_from`) on its frozen autoencoder; a joint run (`train_codec: true`) trains as without context.
The chain tracks what each window it writes sounds. The gate's odds are multiplied by `gate_odds` when a primer is
continued and by `prior_gate_odds` from nothing (band-5: 20 and 12; at 1 the chain loses piano over 32 bars).
`group_gates` (e.g. [strings]) adds coins for other groups (`band_gates.py`); `start_pattern` starts a piece from
nothing with the instruments of a training window's pattern (`band_start.py`); `groove` ranks the drum kit and the
drums' steps by the training hits per pitch and step of the bar (`band_decoding.py`).
The training loop calls `start_training` before the first step of a new run (the `codec_from` autoencoder is loaded
there). `tables_every` k > 1 updates the decoding tables only on every k-th training batch (running averages; their
decoder passes cost most of a frozen-autoencoder step). Drums are hits of one step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from tunesmith.core.constants import MULTITRACK_GROUPS
from tunesmith.core.errors import UserError
from tunesmith.data.piece_history import PieceHistory
from tunesmith.models.band_decoding import DecodingStats
from tunesmith.models.band_gates import GroupGateDraws, PianoGate
from tunesmith.models.band_rolls import primer_roll, velocity_rolls, window_sounding
from tunesmith.models.band_start import StartDistribution
from tunesmith.models.base import MusicModel, SamplePlan, check_choice, check_fraction, check_positive
from tunesmith.models.latent_predictor import PIANO, LatentPredictors, context_features
from tunesmith.models.layers import zero_padded
from tunesmith.models.window_ae import (
    N_GROUPS,
    WindowCodec,
    check_codec_config,
    example_frames,
    reconstruction_terms,
    roll_planes,
    window_planes,
)

GATE_LR = 10.0  # the piano gate's learning rate / the recipe's (`learning_rate_scale`)


@dataclass
class BandConfig:
    window: int = 32  # steps per latent window (2 bars of 16ths at 4 steps per quarter)
    latent_dim: int = 64
    channels: int = 16
    latent_noise: float = 0.1
    latent_l2: float = 0.01
    hidden: int = 512  # predictor width (the seed: 512)
    layers: int = 3  # predictor depth (the seed: 4)
    dropout: float = 0.1
    input_noise: float = 0.1  # std of the noise on predictor inputs in training
    ae_steps: int = 1000  # stage one: optimizer steps of the autoencoder alone
    codec_from: str = ""  # a band checkpoint (file, run folder, shipped name) whose autoencoder starts this run
    train_codec: bool = True  # false: the autoencoder stays as loaded (predictors and start learn alone)
    start_components: int = 32  # mixture components of the start distribution
    start_pattern: bool = False  # from nothing: start windows sound the training windows' group patterns
    presence: bool = False  # a "plays in the next window" coin per group before its latent (latent_predictor.py)
    context: int = 0  # predictors read which groups sounded in the last K + 1 windows and before (0: one window)
    gate: bool = False  # a piano gate on the piece-so-far summary decides whether piano plays (context only)
    gate_odds: float = 1.0  # generation, continuing a primer: the gate's odds are multiplied by this
    prior_gate_odds: float | None = None  # generation from nothing: the same (None: gate_odds)
    gate_draws: int = 8  # generation: candidate piano latents per window where the gate says "plays"
    group_gates: tuple[str, ...] = ()  # presence gates for these groups, not piano (context only; band_gates.py)
    presence_draw: str = "sample"  # generation: "sample" a coin per window, or "threshold" (plays when p > 1/2)
    voicing: bool = False  # decoding: a pitch band per window and voices per step from the data (band_decoding.py)
    harmony: float = 0.0  # decoding: rank units by the band's pooled pitch classes per bar, to this power
    kit: bool = False  # decoding: each window's drums keep the piece's `kit` likeliest drum pitches (band_decoding.py)
    groove: bool = False  # decoding: drum kit and hit steps ranked by the training hits per pitch and step (same)
    feedback: bool = False  # generation: step on the encoding of each written window (see `chain`)
    decoding: str = "expected"  # generation: "expected", "threshold" or "sample" (band_decoding.py)
    temperature: float = 1.0  # generation: default scale of the predicted std (--temperature overrides)
    piano_temperature: float = 1.0  # generation: piano's predicted std is scaled by temperature x this
    steps_per_quarter: int = 4
    tables_every: int = 1  # training: update the decoding tables every k-th batch (k > 1: cheaper, see `loss`)


class BandModel(MusicModel):
    """Five-instrument chain: window autoencoder + latent predictors + start distribution (egrillot)."""

    name: ClassVar[str] = "band"
    Config: ClassVar[type] = BandConfig
    data_kind: ClassVar[str] = "frames"
    generation: ClassVar[str] = "one-shot"
    options: ClassVar[frozenset[str]] = frozenset({"temperature", "primer"})
    cpu_threads: ClassVar[int] = 1

    def __init__(self, config: BandConfig) -> None:
        super().__init__()
        self.config = c = config
        self.codec = WindowCodec(c.window, c.latent_dim, c.channels)
        self.predictors = LatentPredictors(c.latent_dim, c.hidden, c.layers, c.dropout, c.presence,
                                           c.context, c.gate, tuple(map(MULTITRACK_GROUPS.index, c.group_gates)))
        self.start = StartDistribution(N_GROUPS * c.latent_dim, c.start_components, c.start_pattern)
        self.notes = DecodingStats(c.window, c.voicing, c.harmony, 4 * c.steps_per_quarter, c.kit, c.groove)
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))
        self.codec.requires_grad_(c.train_codec)

    # ---- registry and tests ---------------------------------------------------------------------

    @classmethod
    def debug_config(cls) -> dict:
        return {"window": 8, "latent_dim": 4, "channels": 4, "hidden": 16, "layers": 1, "ae_steps": 0,
                "start_components": 2}

    @classmethod
    def validate_config(cls, config: BandConfig) -> None:
        check_codec_config(config)
        check_positive(config, "hidden", "layers", "start_components", "gate_draws", "tables_every")
        if (config.gate or config.group_gates) and not config.context:
            raise UserError("model config gate, group_gates: a gate reads the piece so far; it needs context > 0")
        for name in config.group_gates:
            if name not in MULTITRACK_GROUPS[1:]:
                raise UserError(f"model config group_gates: {name!r} is none of {', '.join(MULTITRACK_GROUPS[1:])}")
        prior = ("prior_gate_odds",) if config.prior_gate_odds is not None else ()  # None: gate_odds
        check_positive(config, "ae_steps", "input_noise", "temperature", "harmony", "context", "piano_temperature",
                       "gate_odds", *prior, minimum=0)
        check_fraction(config, "dropout", "latent_noise")
        check_choice(config, "decoding", ("expected", "threshold", "sample"))
        check_choice(config, "presence_draw", ("sample", "threshold"))

    @classmethod
    def piece_history(cls, config: BandConfig) -> PieceHistory | None:
        """With `context` K the training pairs carry the piece up to window t: `context_features` (the function the
        chain reads in generation) of which groups sounded in each `window` of the piece (data/piece_history.py)."""
        return PieceHistory(config.window, partial(context_features, context=config.context)) if config.context \
            else None

    def learning_rate_scale(self, param: Tensor) -> float:
        """The gates, small heads that start from scratch beside grown predictors, learn at GATE_LR x the rate (as
        `benchmarks/train_band_context.py` trained the piano gate); everything else at the recipe's rate."""
        gates = [m for m in (self.predictors.gate, self.predictors.group_gates) if m is not None]
        return GATE_LR if any(param is p for m in gates for p in m.parameters()) else 1.0

    def example_batch(self, batch_size: int = 2) -> dict[str, Tensor]:
        return example_frames(batch_size, 2 * self.config.window)

    # ---- training -------------------------------------------------------------------------------

    def loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Stage one: reconstruction of window t; stage two (and always in eval): + predictor NLL of
        window t+1 + start NLL (+ with `gate` the gate's BCE). Logs as in `window_ae.py` and `latent_predictor.py`,
        plus "start_nll" and "gate_bce". With `context`, batch["history"] (B, n_context) is the piece up to window
        t (`piece_history`)."""
        c, train = self.config, self.training and torch.is_grad_enabled()
        history = batch.get("history") if c.context else None
        if c.context and history is None:
            raise UserError("a band model with context reads the piece so far: train it with `tunesmith train`, "
                            "whose window pairs then carry it (batch key 'history')")
        planes, mask = window_planes(batch, c.window)
        next_planes, next_mask = window_planes(batch, c.window, offset=c.window)
        valid = next_mask.all(1)  # (B,): real windows t+1
        with torch.set_grad_enabled(torch.is_grad_enabled() and c.train_codec):
            loss, z_t, logs, logits = reconstruction_terms(self.codec, planes, mask, c.latent_noise, c.latent_l2,
                                                           train)
        if train:
            self.step += 1
        if refresh := train and int(self.step) % c.tables_every == 0:  # the table updates: 5.3 s of an 8.2-s step
            self.notes.update(torch.sigmoid(logits.detach()), planes, mask, batch["frames"][:, : c.window],
                              next_planes, valid)
            if c.start_pattern:
                self.start.count_patterns(planes, mask)
        if train and int(self.step) <= c.ae_steps:
            return {"loss": loss, **logs}
        with torch.no_grad():
            z_next = self.codec.encode_groups(next_planes)
        plays = next_planes[:, :, 1].flatten(2).any(-1)  # (B, 5): each group sounds in window t+1
        now = planes[:, :, 1].flatten(2).any(-1)  # ... and in window t
        pred, pred_logs = self.predictors.loss(z_t, z_next, valid, c.input_noise, train, plays, now, history)
        if c.gate:
            gate = self.predictors.gate_loss(history, plays, valid)
            pred, pred_logs["gate_bce"] = pred + gate, gate.detach()
        if c.group_gates:
            gates = self.predictors.group_gates.loss(history, plays, valid)
            pred, pred_logs["group_gate_bce"] = pred + gates, gates.detach()
        if refresh:
            self.calibrate_counts(z_t, z_next, next_planes, valid, now, history)
        start = self.start.nll(z_t.detach())
        return {"loss": loss + pred + start, **logs, **pred_logs, "start_nll": start.detach()}

    @torch.no_grad()
    def calibrate_counts(self, z_t: Tensor, z_next: Tensor, next_planes: Tensor, valid: Tensor,
                         now: Tensor | None = None, history: Tensor | None = None) -> None:
        """`DecodingStats.update_counts` on the decoded predicted means of window t+1 (teacher forced; with
        presence heads or the piano gate, given that each group plays: the latent generation decodes where the
        coin says so; `now` (B, 5) bool: which groups sound in window t; `history` (B, n_context): the piece up
        to t, with `context`)."""
        was_training = self.training
        self.eval()
        ones = torch.ones(z_t.shape[:2], device=z_t.device)
        plays = ones if self.config.presence else None
        if plays is not None:
            z_t = self.predictors.carry(z_t, now if now is not None else plays)
        gated = ones[:, PIANO] if self.config.gate else None
        piano = self.predictors.piano_next(z_t, None if plays is None else plays[:, PIANO], history, gated)[0]
        mean = torch.cat([piano[:, None], self.predictors.others_next(z_t, z_next, plays, history)[0]], 1)
        self.notes.update_counts(torch.sigmoid(self.codec.decode_groups(mean)), next_planes, valid)
        self.train(was_training)

    def grown_weight(self, name: str, weight: Tensor, shape: tuple[int, ...]) -> Tensor | None:
        """`trainer.init_from` a band checkpoint with a smaller `context` (e.g. band-5, context 0): each
        predictor reads the piece-so-far summary as its last inputs, so its first layers only gain trailing
        columns; they start at zero and the grown chain predicts exactly as the old one. Nothing else grows
        (with presence heads the band's inputs interleave a flag per group, so no trailing rule holds)."""
        if not name.startswith("predictors.") or self.config.presence:
            return None
        return zero_padded(weight, shape)

    def start_training(self) -> None:
        """Before the first step of a new run: the autoencoder of `codec_from`, when given (a resumed run has
        it in its own checkpoint)."""
        if self.config.codec_from:
            self.load_codec(self.config.codec_from)

    def load_codec(self, source: str) -> None:
        """Copy the autoencoder weights of the band checkpoint `source` into this model."""
        from tunesmith.models.checkpoint import load_checkpoint, resolve_checkpoint

        payload = load_checkpoint(resolve_checkpoint(source))
        weights = {k[len("codec."):]: v.float() for k, v in payload.get("weights", {}).items()
                   if k.startswith("codec.")}
        try:
            self.codec.load_state_dict(weights)
        except RuntimeError as error:
            raise UserError(f"model config codec_from: {source} holds no autoencoder of this config "
                            f"({str(error).splitlines()[0]})") from None

    # ---- generation -----------------------------------------------------------------------------

    @torch.no_grad()
    def encode_window(self, roll: np.ndarray) -> Tensor:
        """The last `window` steps of a (5, T, 128) velocity roll (left-padded with silence when
        shorter) -> latents (5, D)."""
        w = self.config.window
        frames = np.zeros((N_GROUPS, w, roll.shape[2]), np.float32)
        tail = roll[:, -w:] if roll.shape[1] else roll[:, :0]
        frames[:, w - tail.shape[1]:] = tail
        planes = roll_planes(torch.from_numpy(frames).permute(1, 0, 2)[None])
        return self.eval().codec.encode_groups(planes)[0]

    @torch.no_grad()
    def chain(self, start: Tensor | None, n: int, n_windows: int, temperature: float,
              generator: torch.Generator | None, start_plays: Tensor | None = None,
              start_sounded: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(onset, sustain) bool (n, 5, n_windows x window, 128) of consecutive windows: after `start`
        (5, D) when given, else from a draw of the start distribution. Each window's latents are
        decoded and sampled; with `feedback` the next step starts from the encoding of what was
        written (the predictors then read encoder outputs, as in training, but of sampled windows,
        which are sparser and noisier than real ones). `start_plays` (5,) bool: which groups sound in the
        window `start` encodes (presence heads read it; default: those its decoding sounds). With `context`,
        `start_sounded` (T0, 5) bool: which groups sound in each window of the primer up to `start`'s (default:
        `start`'s decoding); each written window's decoding adds its row."""
        self.eval()
        silent = self.codec.encode_groups(torch.zeros(1, N_GROUPS, 2, self.config.window, 128))[0]
        if start is None:
            band = self.start.draw(n, temperature, generator, silent, partial(self._sounding, generator=generator))
        else:
            band = start[None].expand(n, -1, -1)
        now = start_plays[None].expand(n, -1) if start_plays is not None else None
        if now is None and self.config.presence:
            now = self._sounding(band, generator)  # (n, 5)
        sounded = start_sounded[None].expand(n, -1, -1) if start_sounded is not None else None
        if sounded is None and self.config.context:
            sounded = self._sounding(band, generator)[:, None]  # (n, 1, 5)
        gate = None
        if self.config.gate:
            odds = self.config.prior_gate_odds if start is None and self.config.prior_gate_odds is not None \
                else self.config.gate_odds
            gate = PianoGate(odds, self.config.gate_draws, lambda z: self._group_sounds(z, silent, PIANO))
        group_gate = GroupGateDraws(self.config.gate_draws, lambda z, g: self._group_sounds(z, silent, g)) \
            if self.config.group_gates else None
        latents, playing, onsets, sustains = [], [], [], []
        for k in range(n_windows):
            plays = torch.ones(n, N_GROUPS, dtype=torch.bool)
            if k or start is not None:
                history = context_features(sounded, self.config.context) if self.config.context else None
                band, plays = self.predictors.step(band, temperature, generator, silent, self.config.presence_draw,
                                                   now, history, self.config.piano_temperature, gate, group_gate)
                now = plays
                if self.config.context:
                    written = self._sounding(band, generator) & plays
                    sounded = torch.cat([sounded, written[:, None]], 1)
            latents.append(band)
            playing.append(plays)
            if self.config.feedback:
                onset, sustain = self._silenced(*self.decode_latents(band[:, None], generator), plays[:, :, None])
                onsets.append(onset)
                sustains.append(sustain)
                roll = torch.from_numpy(velocity_rolls(onset.numpy(), sustain.numpy())).float()
                band = self.codec.encode_groups(roll_planes(roll.permute(0, 2, 1, 3)))
        if not self.config.feedback:  # all windows at once: the decoding rule sees the whole piece's register
            return self._silenced(*self.decode_latents(torch.stack(latents, 1), generator), torch.stack(playing, 2))
        return torch.cat(onsets, 2), torch.cat(sustains, 2)

    def _sounding(self, band: Tensor, generator: torch.Generator | None) -> Tensor:
        """Latents (n, 5, D) of one window -> bool (n, 5): which groups its decoding sounds."""
        return self.decode_latents(band[:, None], generator)[1].flatten(2).any(-1)

    def _group_sounds(self, z: Tensor, silent: Tensor, group: int) -> Tensor:
        """A group's latents (N, D) -> bool (N,): whether each decodes, alone in a band of empty windows (`silent`
        (5, D), their encoding), to a window that sounds in every bar (a window that sounds in one bar leaves
        the other empty)."""
        band = silent[None].repeat(len(z), 1, 1)
        band[:, group] = z
        sustain = self.decode_latents(band[:, None], None)[1][:, group]  # (N, window, 128)
        bar = 4 * self.config.steps_per_quarter
        bar = bar if self.config.window % bar == 0 else self.config.window
        return sustain.reshape(len(z), -1, bar * sustain.shape[-1]).any(-1).all(-1)

    def _silenced(self, onset: Tensor, sustain: Tensor, plays: Tensor) -> tuple[Tensor, Tensor]:
        """(onset, sustain) (n, 5, k x window, 128) with nothing where `plays` (n, 5, k) is False: a group
        whose presence coin says silent writes nothing in that window."""
        mask = plays.repeat_interleave(self.config.window, dim=2)[..., None]
        return onset & mask, sustain & mask

    @torch.no_grad()
    def decode_latents(self, z: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """Latents (n, k, 5, D) -> (onset, sustain) bool (n, 5, k x window, 128) by the `decoding` rule."""
        n, k = z.shape[:2]
        logits = self.eval().codec.decode_groups(z.flatten(0, 1))  # (n k, 5, 2, W, 128)
        logits = logits.reshape(n, k, *logits.shape[1:]).permute(0, 2, 3, 1, 4, 5).flatten(3, 4)
        return self.notes.decode(logits, self.config.decoding, generator)

    @torch.no_grad()
    def sample(self, plan: SamplePlan, generator: torch.Generator) -> list[np.ndarray]:
        """`plan.n` (5, steps, 128) uint8 velocity rolls: the primer (`plan.context`, a multitrack roll,
        padded to whole bars) then `plan.bars` new 4/4 bars."""
        temperature = self.config.temperature if plan.sampling.temperature is None else plan.sampling.temperature
        bar = 4 * self.config.steps_per_quarter
        context = primer_roll(plan.context, bar)
        new_steps = plan.bars * bar
        n_windows = math.ceil(new_steps / self.config.window)
        start = self.encode_window(context) if context.shape[1] else None
        sounding = torch.from_numpy(context[:, -self.config.window:].reshape(N_GROUPS, -1).any(-1))
        onset, sustain = self.chain(start, plan.n, n_windows, temperature, generator,
                                    sounding if start is not None else None,
                                    window_sounding(context, self.config.window) if start is not None else None)
        velocities = self.notes.velocities(onset.shape[2]).numpy()
        rolls = velocity_rolls(onset.numpy(), sustain.numpy(), velocities)[:, :, :new_steps]
        return [np.concatenate([context, roll], axis=1) for roll in rolls]
