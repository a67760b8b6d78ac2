"""`lstm-nade-mix`: a per-frame mixture of K LSTM-NADEs (the shipped JSB model, `jsb-best`).

    q(v_t | v_<t) = sum_k sum_s w_ks p_k(R_s v_t | R_s v_<t, shift code s)

Each p_k is a complete LSTM-NADE (`frame_nade.py`) reading the same past; the members differ in key
order (bass first, soprano first) or training seed so that they err differently. With `shifts` S > 0,
each member is also read transposed: R_s rolls every frame up by s semitones (s in -S..S) and the member
is told the shift (it was trained on such shifted copies with the shift as an input). R_s is a bijection
of the 2^88 frames, so every component is a proper distribution over frames given the past, and so is
the mixture: the product over frames is an exact likelihood. Mixing lowers the NLL of components that are
each over-confident in different places (one LSTM-NADE overfits JSB's 229 training chorales after about
120 epochs even with transposition and dropout). The weights w (members x (2S + 1), default uniform) are
fit by EM on the training split (`em_weights`), never on the split that is scored.

With `share` < 1 the weights of frame t are those of a fixed-share forecaster (Herbster & Warmuth 1998):
the posterior over components given frames < t of the same piece, mixed back toward w by `share`. They
depend on previous frames only, so each conditional is still an exact distribution over the next frame;
a piece that one component (a key order, a transposition) suits gets more of its weight as it goes.

Training optimises each member's own likelihood on the same batches (an ensemble trained side by side,
each with its own random transpositions); in eval mode `loss` is the mixture's NLL, which is what the
training loop selects the best checkpoint by. Generation draws the member per frame and row, samples
the frame from it, and every member reads the frame chosen.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from tunesmith.core.errors import UserError
from tunesmith.models.base import MAX_DEPTH, Likelihood, MusicModel, check_choice, check_fraction, check_positive
from tunesmith.models.distributions import SamplingConfig
from tunesmith.models.frame_nade import FRAME_OPTIONS, KEY_ORDERS, FrameNADE, FrameNADEConfig, FrameStepper, real_frames


@dataclass
class NADEMixtureConfig(FrameNADEConfig):
    members: int = 2
    order: str = "both"  # members alternate up / down; "up" / "down" for all; or one per member: "up,down,down"
    shifts: int = 0  # test-time transpositions: each member is also read shifted by -shifts..shifts semitones
    weights: list[float] | None = None  # (members x (2 shifts + 1)) component weights, row-major; None: uniform
    # fixed share: after each frame the weights become (1 - share) x their posterior given the piece so far
    # + share x `weights`; 1: the same weights at every frame, 0: Bayesian averaging over whole pieces
    share: float = 1.0


def member_orders(config: NADEMixtureConfig) -> list[str]:
    """The key order of each member: "both" alternates up, down, ...; one order is every member's."""
    if config.order == "both":
        return [("up", "down")[k % 2] for k in range(config.members)]
    orders = config.order.split(",")
    return orders * config.members if len(orders) == 1 else orders


class NADEMixture(MusicModel):
    """Per-frame mixture of LSTM-NADEs: exact joint likelihood of each frame's 88 keys, given the past."""

    name: ClassVar[str] = "lstm-nade-mix"
    Config: ClassVar[type] = NADEMixtureConfig
    data_kind: ClassVar[str] = "frames"
    likelihood: ClassVar[Likelihood] = Likelihood("exact", "frame")
    generation: ClassVar[str] = "autoregressive"
    options: ClassVar[frozenset[str]] = FRAME_OPTIONS
    cpu_threads: ClassVar[int] = 1

    def __init__(self, config: NADEMixtureConfig) -> None:
        super().__init__()
        self.config = config
        shared = {f.name: getattr(config, f.name) for f in dataclasses.fields(FrameNADEConfig)}
        self.members = nn.ModuleList(FrameNADE(FrameNADEConfig(**{**shared, "order": order}))
                                     for order in member_orders(config))
        # components (member, shift), member-major: the order of `weights`
        self.components = [(k, s) for k in range(config.members) for s in range(-config.shifts, config.shifts + 1)]

    @classmethod
    def from_members(cls, members: list[FrameNADE], shifts: int = 0, weights: list[float] | None = None,
                     share: float = 1.0) -> NADEMixture:
        """The mixture of LSTM-NADEs trained apart (same sizes and transposition range; any key orders),
        read at test-time shifts -shifts..shifts, with component `weights` (None: uniform) and fixed
        `share`: an ensemble assembled after training is the same model as one trained side by side."""
        configs = [dataclasses.asdict(m.config) for m in members]
        sizes = [{k: v for k, v in c.items() if k not in ("order", "dropout")} for c in configs]
        orders = [c["order"] for c in configs]
        if any(s != sizes[0] for s in sizes):
            raise ValueError("mixture members must have the same sizes and transposition range")
        if orders == [("up", "down")[k % 2] for k in range(len(orders))]:
            order = "both"
        else:
            order = orders[0] if len(set(orders)) == 1 else ",".join(orders)
        weights = None if weights is None else [float(w) for w in weights]
        config = NADEMixtureConfig(**{**configs[0], "order": order, "members": len(members), "shifts": shifts,
                                      "weights": weights, "share": share})
        cls.validate_config(config)
        mixture = cls(config)
        for target, source in zip(mixture.members, members, strict=True):
            target.load_state_dict(source.state_dict())
        return mixture

    @classmethod
    def debug_config(cls) -> dict:
        return {"hidden_size": 16, "num_layers": 1, "nade_hidden": 8, "dropout": 0.0, "members": 2}

    @classmethod
    def validate_config(cls, config: NADEMixtureConfig) -> None:
        FrameNADE.validate_config(dataclasses.replace(config, order="up"))
        check_positive(config, "members", maximum=MAX_DEPTH)
        if not isinstance(config.order, str) or "," not in config.order:
            check_choice(config, "order", ("both", *KEY_ORDERS))
        elif len(config.order.split(",")) != config.members or not set(config.order.split(",")) <= set(KEY_ORDERS):
            raise UserError(f"model config order must name {', '.join(KEY_ORDERS)} for each of the "
                            f"{config.members} members (e.g. 'up,down'), got {config.order!r}")
        check_positive(config, "shifts", minimum=0, maximum=config.transpose)
        check_fraction(config, "share")
        count = config.members * (2 * config.shifts + 1)
        weights = config.weights
        if weights is not None and not (
                isinstance(weights, list | tuple) and len(weights) == count
                and all(isinstance(w, int | float) and not isinstance(w, bool) and 0 <= w < math.inf for w in weights)
                and sum(weights) > 0):
            raise UserError(f"model config weights must be {count} non-negative numbers (members x "
                            f"(2 shifts + 1)) with a positive sum, or null for uniform; got {weights!r}")

    def example_batch(self, batch_size: int = 2, length: int = 12) -> dict[str, Tensor]:
        return self.members[0].example_batch(batch_size, length)

    def log_weights(self) -> Tensor:
        """log w (components,): the normalised component weights (uniform when the config has none)."""
        if self.config.weights is None:
            return torch.full((len(self.components),), -math.log(len(self.components)), dtype=torch.float64)
        weights = torch.tensor(self.config.weights, dtype=torch.float64)
        return (weights / weights.sum()).log()

    def component_log_likelihoods(self, sounding: Tensor, mask: Tensor | None = None,
                                  shift: Tensor | None = None) -> Tensor:
        """sounding (batch, time, keys) {0, 1} -> log p_ks(frame_t | frames_<t) (components, batch, time) in
        nats: member k reading every frame rolled up by s semitones (plus any `shift` code given)."""
        out = []
        for k, s in self.components:
            if s == 0:
                out.append(self.members[k].frame_log_likelihood(sounding, mask, shift))
                continue
            base = torch.zeros(len(sounding), dtype=torch.long, device=sounding.device) if shift is None else shift
            out.append(self.members[k].frame_log_likelihood(torch.roll(sounding, s, -1), mask, base + s))
        return torch.stack(out)

    def frame_log_likelihood(self, sounding: Tensor, mask: Tensor | None = None,
                             shift: Tensor | None = None) -> Tensor:
        """sounding (batch, time, keys) {0, 1} -> log q(frame_t | frames_<t) (batch, time) in nats."""
        per_component = self.component_log_likelihoods(sounding, mask, shift)
        if self.config.share < 1:
            mixed = self._fixed_share(per_component)
        elif self.config.weights is None:  # uniform: the same arithmetic as before weights existed
            mixed = torch.logsumexp(per_component, 0) - math.log(len(self.components))
        else:
            mixed = torch.logsumexp(per_component + self.log_weights().to(per_component)[:, None, None], 0)
        return mixed if mask is None else mixed * mask

    def _fixed_share(self, per_component: Tensor) -> Tensor:
        """(components, batch, time) log p_c(frame_t | frames_<t) -> log q (batch, time), the weights of
        frame t from frames < t (float64 through the scan: hundreds of frames of renormalising)."""
        log_w = self.log_weights().to(per_component.device).expand(per_component.shape[1], -1)
        out = []
        for t in range(per_component.shape[2]):
            joint = log_w + per_component[:, :, t].T.double()  # (batch, components)
            out.append(torch.logsumexp(joint, -1))
            log_w = self.share_step(joint - out[-1].unsqueeze(-1))
        return torch.stack(out, 1).to(per_component.dtype) if out else per_component[0]

    def share_step(self, log_posterior: Tensor) -> Tensor:
        """Posterior log-weights (batch, components) -> next frame's: (1 - share) posterior + share prior."""
        share = self.config.share
        prior = self.log_weights().to(log_posterior)
        if share == 0:
            return log_posterior
        if share == 1:
            return prior.expand_as(log_posterior)
        return torch.logaddexp(log_posterior + math.log1p(-share), prior + math.log(share))

    def loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Training: the mean of the members' NLLs (nats per frame). Eval: the mixture's NLL, plus
        "member_loss" (the members' mean NLL) in both modes."""
        if self.training:
            members = torch.stack([m.loss(batch)["loss"] for m in self.members]).mean()
            return {"loss": members, "member_loss": members.detach()}
        sounding, mask = real_frames(batch)
        per_member = torch.stack([m.frame_log_likelihood(sounding, mask) for m in self.members])
        frames = mask.sum().clamp(min=1)
        mixture = self.frame_log_likelihood(sounding, mask)
        return {"loss": -mixture.sum() / frames, "member_loss": -per_member.sum((1, 2)).mean() / frames}

    # ---- likelihood of one piece, generation: the members' conversions, steppers and draws -------------

    @torch.no_grad()
    def log_likelihood(self, array) -> tuple[float, int]:
        """Pianoroll (T, 88, 2) -> (log q of its T sounding frames in nats, T)."""
        sounding = self.members[0].to_elements(array).unsqueeze(0)
        return float(self.eval().frame_log_likelihood(sounding).sum()), sounding.shape[1]

    def to_elements(self, array) -> Tensor:
        return self.members[0].to_elements(array)

    def from_elements(self, frames: Tensor):
        return self.members[0].from_elements(frames)

    def stepper(self) -> MixtureStepper:
        return MixtureStepper(self)

    @torch.no_grad()
    def choose(self, out: tuple[list[tuple[Tensor, Tensor]], Tensor], sampling: SamplingConfig,
               generator: torch.Generator | None) -> Tensor:
        """From the stepper's (biases per component, log-weights (batch, components)): draw a component
        (member k, shift s) per row by its weight, then that member's frame in the rolled keys, rolled back
        down by s -> (batch, keys) {0, 1}."""
        biases, log_w = out
        if self.config.weights is None and self.config.share == 1:  # uniform: the draw as before weights
            choice = torch.randint(len(self.components), (len(log_w),), generator=generator)
        else:
            choice = torch.multinomial(log_w.exp().float(), 1, generator=generator).squeeze(1)
        frame = torch.zeros(len(choice), self.config.keys)
        for c, ((k, s), component_biases) in enumerate(zip(self.components, biases, strict=True)):
            rows = choice == c
            if rows.any():
                drawn = self.members[k].choose(tuple(x[rows] for x in component_biases), sampling, generator)
                frame[rows] = torch.roll(drawn, -s, -1)
        return frame


class MixtureStepper(nn.Module):
    """Every component's stepper reads the same frames (rolled by its shift). The output is their NADE
    biases, one pair per component (member, shift), and the components' log-weights (batch, components)
    for the next frame: the prior weights, or with `share` < 1 the fixed-share posterior given the frames
    read so far (the zero start frame is not one of them)."""

    def __init__(self, mixture: NADEMixture) -> None:
        super().__init__()
        self.mixture = mixture
        self.members = nn.ModuleList(FrameStepper(mixture.members[k], s) for k, s in mixture.components)

    def initial_state(self, batch: int, device: torch.device | str = "cpu", generator=None) -> tuple:
        log_w = self.mixture.log_weights().to(device).expand(batch, -1)
        return [m.initial_state(batch, device) for m in self.members], log_w, None

    @torch.no_grad()
    def forward(self, previous: Tensor, state: tuple) -> tuple[tuple[list, Tensor], tuple]:
        states, log_w, last = state
        if last is not None and self.mixture.config.share < 1:  # `previous` is a real frame: weigh it
            log_p = torch.stack([stepper.frame_log_prob(previous, out)
                                 for stepper, out in zip(self.members, last, strict=True)], -1)
            joint = log_w + log_p.double()
            log_w = self.mixture.share_step(joint - torch.logsumexp(joint, -1, keepdim=True))
        outs = [m(previous, s) for m, s in zip(self.members, states, strict=True)]
        biases = [o for o, _ in outs]
        return (biases, log_w), ([s for _, s in outs], log_w, biases)


def em_weights(log_likelihoods: Tensor, iterations: int = 200) -> list[float]:
    """Maximum-likelihood weights of a per-frame mixture by EM: log_likelihoods (components, frames) in
    nats, each column one frame's log p_c(frame | past) -> weights (components,) summing to 1."""
    ll = log_likelihoods.double()
    log_w = torch.full((len(ll),), -math.log(len(ll)), dtype=torch.float64)
    for _ in range(iterations):
        joint = ll + log_w[:, None]
        responsibility = (joint - torch.logsumexp(joint, 0)).exp()  # (components, frames)
        log_w = responsibility.mean(1).clamp(min=1e-12).log()
    weights = log_w.exp()
    return (weights / weights.sum()).tolist()
