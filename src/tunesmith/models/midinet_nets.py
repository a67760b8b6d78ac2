"""MidiNet's networks and configuration (the model, its losses and generation: `midinet.py`).

Layout (B, T, C) throughout (`midinet_layers.py`). The generator's condition vector `cond` (B, D) is
the bar's chord (13, when `chords`) followed by the piece's profile (14, when `profile`) and the bar's
history (23, when `history`), or None; the
discriminator's is the chord alone. A discriminator that also saw the profile won every batch (training
accuracy 1.0 from step 3,000 on, against 0.7 without it) and the generator wandered off (validation
pitch-class KL 0.30 -> 0.84): judging a bar against its piece's key and register is too easy a tell.
The generator learns the profile from its own key-matching term instead (`MidiNet.generator_loss`).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812

from tunesmith.data.bar_pairs import HISTORY_DIM, PROFILE_DIM
from tunesmith.models.midinet_bars import N_PITCHES
from tunesmith.models.midinet_layers import PairDown, PairUp, SelfAttention, StepNorm, broadcast_cat
from tunesmith.representations.bars import CHORD_DIM


@dataclass
class MidiNetConfig:
    steps_per_bar: int = 16  # filled from the representation; a multiple of 8
    chords: bool = False  # condition G and D on the bar's chord vector
    attention: bool = True  # self-attention in G (at 4 and 16 steps) and in D
    noise_dim: int = 100
    gen_hidden: int = 1024
    gen_channels: int = 128
    cond_channels: int = 16
    disc_first_channels: int = 16  # channels of D's first layer: the feature-matching features
    disc_channels: int = 77
    disc_hidden: int = 1024
    lambda_mean: float = 0.8  # weight of the mean-matching term of the generator loss
    lambda_feature: float = 10.0  # weight of the feature-matching term
    label_smoothing: float = 0.9  # target for real bars in the discriminator loss (one-sided)
    chord_dropout: float = 0.2  # share of training bars whose chord is replaced by "no chord"
    tau: float = 1.0  # softmax temperature of the straight-through gradient
    d_steps: int = 1
    g_steps: int = 2
    seed_bank: int = 256  # real training bars kept for generation (0 disables)
    # condition G and D on the piece's profile (key: pitch-class shares, register: mean and spread;
    # data.bar_pairs.piece_profile), so consecutive bars stay in one key and register. Off: the seed.
    profile: bool = False
    # weight of G's key matching: the mean-matching term on pitch classes and pitches counted from each
    # piece's main pitch class and mean pitch (`midinet_bars.relative_histograms`)
    lambda_key: float = 0.0
    # condition G on the bar's history too (data.bar_pairs.history_features: the last 4 bars' pitch
    # classes and register, a repeated-bar flag, the place in an 8-bar phrase). Off: one bar back only.
    history: bool = False
    # weight of G's repeat matching: batch mean of the share of a bar repeating the bar before it,
    # generated vs real (`midinet_bars.repeat_share`)
    lambda_repeat: float = 0.0
    # generation only (1.0 / 0: as before). The pieces' register spread the generator is told is
    # multiplied by `spread_scale` (> 1: wider melodies); a new bar that repeats the bar before it
    # note for note, or is silent (never a training target: `data.bar_pairs`), is drawn again (fresh
    # noise) up to `redraws` times. `hold_bias` is added to the
    # logit of the pitch of the step before (not a rest's), within a bar, so a step changes note only
    # when the generator prefers another by that margin (steps are then chosen one after another).
    # `off_key_penalty` (profile models) is subtracted from the logits of the pitches off the piece's
    # profile: pitch classes it never uses, or outside its register (`midinet_bars.out_of_key_mask`,
    # which about 1 % of real notes fall outside); inf forbids them.
    spread_scale: float = 1.0
    redraws: int = 0
    hold_bias: float = 0.0
    off_key_penalty: float = 0.0
    # subtracted from each pitch's logit per octave it lies from the last pitch sounded (the step
    # before, or the previous bar's last note at a bar's first step): fewer wide leaps
    leap_penalty: float = 0.0
    # (profile models) subtracted from the logits of the pitches whose pitch class lies outside the
    # major / natural-minor scale that best holds the piece's profile (`midinet_bars.off_scale_mask`):
    # Essen keeps 0.96 of its notes in one such scale; inf forbids the others
    scale_penalty: float = 0.0
    # a new bar is also drawn again (within `redraws`) when it and the 3 bars before it sound fewer than
    # this many different pitches (a melody stuck on two notes); 0: off
    min_recent_pitches: int = 0
    # weight of a melodic-interval prior added to the logits: the log share of each interval size (from
    # the last pitch sounded) among the seed bank's real bars, relative to the commonest (0: off)
    interval_prior: float = 0.0
    # (profile models) weight of a pitch-class prior added to the logits: the log of how much the
    # piece's profile uses each pitch class, relative to its commonest (`midinet_bars.profile_log_prior`)
    profile_prior: float = 0.0
    # (profile models) weight of a bar-by-bar pull of the piece's pitch-class shares so far towards its
    # profile's (`MidiNetSampling.feedback_bias`): over-used classes lose, under-used ones gain
    profile_feedback: float = 0.0

    @property
    def chord_dim(self) -> int:
        return CHORD_DIM if self.chords else 0

    @property
    def cond_dim(self) -> int:
        """Width of the generator's condition vector [chord, profile, history] (D takes the chord alone)."""
        return self.chord_dim + (PROFILE_DIM if self.profile else 0) + (HISTORY_DIM if self.history else 0)


class Conditioner(nn.Module):
    """Previous bar (B, T, 128) -> feature maps {T: (B, T, C), T/2: ..., T/4: ..., T/8: ...}."""

    def __init__(self, cfg: MidiNetConfig) -> None:
        super().__init__()
        c = cfg.cond_channels
        self.first = nn.Linear(N_PITCHES, c)  # the (1, 128) conv: one step's pitches -> c channels
        self.downs = nn.ModuleList(PairDown(c, c) for _ in range(3))
        self.norms = nn.ModuleList(StepNorm(c) for _ in range(4))

    def forward(self, prev: Tensor) -> dict[int, Tensor]:
        h = F.leaky_relu(self.norms[0](self.first(prev)), 0.2)
        maps = {h.shape[1]: h}
        for down, norm in zip(self.downs, self.norms[1:], strict=True):
            h = F.leaky_relu(norm(down(h)), 0.2)
            maps[h.shape[1]] = h
        return maps


class Generator(nn.Module):
    """(noise (B, Z), prev (B, T, 128), cond (B, D) [chord, profile] or None) -> logits (B, T, 129);
    [..., 128] = rest."""

    def __init__(self, cfg: MidiNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        g, cd = cfg.gen_channels, cfg.cond_dim
        self.start_steps = cfg.steps_per_bar // 8
        width = g + cfg.cond_channels + cd  # channels after each concatenation
        self.conditioner = Conditioner(cfg)
        hidden = cfg.gen_hidden
        self.fc0 = nn.Sequential(nn.Linear(cfg.noise_dim + cd, hidden), nn.BatchNorm1d(hidden))
        self.fc1 = nn.Sequential(nn.Linear(hidden + cd, g * self.start_steps),
                                 nn.BatchNorm1d(g * self.start_steps))
        self.ups = nn.ModuleList(PairUp(width, g) for _ in range(3))
        self.norms = nn.ModuleList(StepNorm(g) for _ in range(3))
        # One module per scale (the seed called one attention module twice, leaving the second unused).
        self.attention = nn.ModuleDict({str(s): SelfAttention(width) for s in self.attention_steps()}
                                       if cfg.attention else {})
        self.out = nn.Linear(width, N_PITCHES + 1)  # the (1, 128) transposed conv, plus a rest logit

    def attention_steps(self) -> tuple[int, int]:
        """The two scales (in steps) that get self-attention: after the first upsampling, and the last."""
        return 2 * self.start_steps, self.cfg.steps_per_bar

    def forward(self, noise: Tensor, prev: Tensor, cond: Tensor | None) -> Tensor:
        maps = self.conditioner(prev)
        h = F.relu(self.fc0(broadcast_cat(noise, cond)))
        h = F.relu(self.fc1(broadcast_cat(h, cond))).reshape(len(noise), self.start_steps, -1)
        h = broadcast_cat(h, maps[self.start_steps], cond)
        for up, norm in zip(self.ups, self.norms, strict=True):
            h = F.relu(norm(up(h)))
            h = broadcast_cat(h, maps[h.shape[1]], cond)
            if str(h.shape[1]) in self.attention:
                h = self.attention[str(h.shape[1])](h)
        return self.out(h)


class Discriminator(nn.Module):
    """(bar (B, T, 128), chord (B, 13) or None) -> (logit (B,), first-layer features (B, T/2, C1)).
    The chord is concatenated to the first-layer features and to the flat features."""

    def __init__(self, cfg: MidiNetConfig) -> None:
        super().__init__()
        c1, c2, cd = cfg.disc_first_channels, cfg.disc_channels, cfg.chord_dim
        self.first = PairDown(N_PITCHES, c1)  # the (2, 128) conv, stride 2
        self.second = nn.Linear(4 * (c1 + cd), c2)  # the (4, 1) conv, stride 2, no padding
        self.norm = StepNorm(c2)
        self.attention = SelfAttention(c2) if cfg.attention else nn.Identity()
        steps = (cfg.steps_per_bar // 2 - 4) // 2 + 1
        self.fc = nn.Sequential(nn.Linear(steps * c2 + cd, cfg.disc_hidden), nn.BatchNorm1d(cfg.disc_hidden),
                                nn.LeakyReLU(0.2), nn.Linear(cfg.disc_hidden, 1))

    def forward(self, bar: Tensor, cond: Tensor | None) -> tuple[Tensor, Tensor]:
        features = F.leaky_relu(self.first(bar), 0.2)
        h = broadcast_cat(features, cond)
        windows = h.unfold(1, 4, 2).transpose(2, 3)  # (B, T', 4, C): 4-step windows, stride 2
        h = self.second(windows.reshape(len(bar), windows.shape[1], -1))
        h = F.leaky_relu(self.attention(self.norm(h)), 0.2)
        return self.fc(broadcast_cat(h.flatten(1), cond)).squeeze(-1), features
