"""`lstm-nade-mix`: a per-frame mixture of K LSTM-NADEs (the shipped JSB model, `jsb-best`).

    q(v_t | v_<t) = 1/K sum_k p_k(v_t | v_<t)

Each p_k is a complete LSTM-NADE (`frame_nade.py`) reading the same past; the members alternate key
orders (bass first, soprano first) so that they err differently. Every conditional is a proper
distribution over the 2^88 frames, so the product over frames is an exact likelihood, and mixing lowers
the NLL of K members that are each over-confident in different places (one LSTM-NADE overfits JSB's
229 training chorales after about 120 epochs even with transposition and dropout).

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

from tunesmith.models.base import MAX_DEPTH, Likelihood, MusicModel, check_choice, check_positive
from tunesmith.models.distributions import SamplingConfig
from tunesmith.models.frame_nade import FRAME_OPTIONS, FrameNADE, FrameNADEConfig, real_frames


@dataclass
class NADEMixtureConfig(FrameNADEConfig):
    members: int = 2
    order: str = "both"  # members alternate up / down; or "up" / "down" for all


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
        orders = ["up", "down"] if config.order == "both" else [config.order]
        self.members = nn.ModuleList(FrameNADE(FrameNADEConfig(**{**shared, "order": orders[k % len(orders)]}))
                                     for k in range(config.members))

    @classmethod
    def from_members(cls, members: list[FrameNADE]) -> NADEMixture:
        """The mixture of LSTM-NADEs trained apart (same sizes; key orders up, down, up, ... or all one):
        an ensemble assembled after training is the same model as one trained side by side."""
        configs = [dataclasses.asdict(m.config) for m in members]
        sizes = [{k: v for k, v in c.items() if k not in ("order", "dropout")} for c in configs]
        orders = [c["order"] for c in configs]
        if any(s != sizes[0] for s in sizes):
            raise ValueError("mixture members must have the same sizes and transposition range")
        order = "both" if orders == [("up", "down")[k % 2] for k in range(len(orders))] else orders[0]
        if order != "both" and len(set(orders)) > 1:
            raise ValueError(f"member key orders must alternate up, down, ... or be all one, got {orders}")
        mixture = cls(NADEMixtureConfig(**{**configs[0], "order": order, "members": len(members)}))
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
        check_choice(config, "order", ("both", "up", "down"))

    def example_batch(self, batch_size: int = 2, length: int = 12) -> dict[str, Tensor]:
        return self.members[0].example_batch(batch_size, length)

    def frame_log_likelihood(self, sounding: Tensor, mask: Tensor | None = None,
                             shift: Tensor | None = None) -> Tensor:
        """sounding (batch, time, keys) {0, 1} -> log q(frame_t | frames_<t) (batch, time) in nats."""
        per_member = torch.stack([m.frame_log_likelihood(sounding, mask, shift) for m in self.members])
        mixed = torch.logsumexp(per_member, 0) - math.log(len(self.members))
        return mixed if mask is None else mixed * mask

    def loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Training: the mean of the members' NLLs (nats per frame). Eval: the mixture's NLL, plus
        "member_loss" (the members' mean NLL) in both modes."""
        if self.training:
            members = torch.stack([m.loss(batch)["loss"] for m in self.members]).mean()
            return {"loss": members, "member_loss": members.detach()}
        sounding, mask = real_frames(batch)
        per_member = torch.stack([m.frame_log_likelihood(sounding, mask) for m in self.members])
        frames = mask.sum().clamp(min=1)
        mixture = torch.logsumexp(per_member, 0) - math.log(len(self.members))
        return {"loss": -(mixture * mask).sum() / frames, "member_loss": -per_member.sum((1, 2)).mean() / frames}

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
    def choose(self, biases: list[tuple[Tensor, Tensor]], sampling: SamplingConfig,
               generator: torch.Generator | None) -> Tensor:
        """Draw a member per row (uniform: the mixture weights), then that member's frame (batch, keys)."""
        choice = torch.randint(len(self.members), (len(biases[0][0]),), generator=generator)
        frame = torch.zeros(len(choice), self.config.keys)
        for k, (member, member_biases) in enumerate(zip(self.members, biases, strict=True)):
            rows = choice == k
            if rows.any():
                frame[rows] = member.choose(tuple(x[rows] for x in member_biases), sampling, generator)
        return frame


class MixtureStepper(nn.Module):
    """Every member's stepper reads the same frames; the output is their biases, one pair per member."""

    def __init__(self, mixture: NADEMixture) -> None:
        super().__init__()
        self.members = nn.ModuleList(m.stepper() for m in mixture.members)

    def initial_state(self, batch: int, device: torch.device | str = "cpu", generator=None) -> list:
        return [m.initial_state(batch, device) for m in self.members]

    def forward(self, previous: Tensor, state: list) -> tuple[list, list]:
        outs = [m(previous, s) for m, s in zip(self.members, state, strict=True)]
        return [o for o, _ in outs], [s for _, s in outs]
