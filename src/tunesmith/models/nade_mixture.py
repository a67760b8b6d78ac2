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

from tunesmith.models.frame_nade import FrameNADE, FrameNADEConfig, FrameWalker, generate_rolls, real_frames


@dataclass
class NADEMixtureConfig(FrameNADEConfig):
    members: int = 2
    order: str = "both"  # members alternate up / down; or "up" / "down" for all


class NADEMixture(nn.Module):
    """Per-frame mixture of LSTM-NADEs: exact joint likelihood of each frame's 88 keys, given the past."""

    name: ClassVar[str] = "lstm-nade-mix"
    Config: ClassVar[type] = NADEMixtureConfig
    objective: ClassVar[str] = "likelihood"
    data_kind: ClassVar[str] = "frames"
    cpu_threads: ClassVar[int] = 1

    def __init__(self, config: NADEMixtureConfig) -> None:
        super().__init__()
        if config.members < 1 or config.order not in ("both", "up", "down"):
            raise ValueError(f"need members >= 1 and order both, up or down; got {config.members}, {config.order!r}")
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
    def defaults(cls) -> dict:
        return {}

    @classmethod
    def debug_config(cls) -> dict:
        return {"hidden_size": 16, "num_layers": 1, "nade_hidden": 8, "dropout": 0.0, "members": 2}

    @classmethod
    def debug_dims(cls) -> dict:
        return {}

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

    @torch.no_grad()
    def sample(self, n_frames: int, primer: Tensor | None = None, batch: int = 1, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> Tensor:
        """New frames after an optional primer (P, keys) -> (batch, n_frames, keys) {0, 1}, key order."""
        walkers = [FrameWalker(m, batch) for m in self.members]
        for walker in walkers:
            walker.read(primer)
        frames = []
        for _ in range(n_frames):
            choice = torch.randint(len(walkers), (batch, 1), generator=generator)  # member per row
            candidates = torch.stack([w.sample(temperature, generator) for w in walkers])  # (K, batch, keys)
            frames.append(candidates.gather(0, choice.expand(-1, candidates.shape[-1]).unsqueeze(0))[0])
            for walker in walkers:
                walker.observe(frames[-1])
        return torch.stack(frames, 1)

    def generate_scores(self, representation, request, primer_score) -> list:
        """`tunesmith generate`: chorale-like pieces, continuing the primer if given."""
        return generate_rolls(self, representation, request, primer_score)
