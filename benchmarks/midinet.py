"""MidiNet step time: our generator (Linear + reshape upsampling) vs a straight transposed-conv one.

Both generators have the same sizes and the same parameter count, laid out as the seed did
((B, C, T, 1) maps, `ConvTranspose2d` with kernel (2, 1) / stride (2, 2) for each 2x upsampling and
kernel (1, 129) / stride (1, 2) for the last layer, `Conv2d` 1x1 attention maps). Each is timed in
this one run, on the same thread count, in the same MidiNet model (same discriminator) for:
  - a generator forward + backward, and
  - one full adversarial training step (d_steps discriminator + g_steps generator updates).
Usage: python benchmarks/midinet.py [--threads 1] [--batch 72] [--steps 30] [--no-attention]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812

from tunesmith.models.midinet import Conditioner, MidiNet, MidiNetConfig
from tunesmith.training.config import OptimConfig
from tunesmith.training.objectives import AdversarialObjective


class ConvAttention(nn.Module):
    """SAGAN self-attention over (B, C, T, 1) maps with Conv2d 1x1 query / key / value (the seed's)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.query, self.key = nn.Conv2d(channels, channels // 8, 1), nn.Conv2d(channels, channels // 8, 1)
        self.value, self.gamma = nn.Conv2d(channels, channels, 1), nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        b, c, t, w = x.shape
        q, k = self.query(x).flatten(2), self.key(x).flatten(2)
        attention = torch.softmax(q.transpose(1, 2) @ k, dim=-1)
        out = (self.value(x).flatten(2) @ attention.transpose(1, 2)).reshape(b, c, t, w)
        return self.gamma * out + x


class TransposedConvGenerator(nn.Module):
    """Same interface and sizes as `midinet.Generator`, built from transposed convolutions."""

    def __init__(self, cfg: MidiNetConfig) -> None:
        super().__init__()
        g, cd, self.cfg = cfg.gen_channels, cfg.chord_dim, cfg
        width = g + cfg.cond_channels + cd
        self.conditioner = Conditioner(cfg)  # same conditioner: only the upsampling path differs
        hidden = cfg.gen_hidden
        self.fc0 = nn.Sequential(nn.Linear(cfg.noise_dim + cd, hidden), nn.BatchNorm1d(hidden))
        self.fc1 = nn.Sequential(nn.Linear(cfg.gen_hidden + cd, 2 * g), nn.BatchNorm1d(2 * g))
        self.ups = nn.ModuleList(nn.ConvTranspose2d(width, g, (2, 1), (2, 2)) for _ in range(3))
        self.norms = nn.ModuleList(nn.BatchNorm2d(g) for _ in range(3))
        self.attention = nn.ModuleDict({"4": ConvAttention(width), "16": ConvAttention(width)}
                                       if cfg.attention else {})
        self.out = nn.ConvTranspose2d(width, 1, (1, 129), (1, 2))

    def forward(self, noise: Tensor, prev: Tensor, chord: Tensor | None) -> Tensor:
        maps = {t: m.transpose(1, 2)[..., None] for t, m in self.conditioner(prev).items()}  # (B, C, T, 1)
        h = F.relu(self.fc0(noise if chord is None else torch.cat([noise, chord], 1)))
        h = F.relu(self.fc1(h if chord is None else torch.cat([h, chord], 1))).reshape(len(noise), -1, 2, 1)
        h = self._cat(h, maps, chord)
        for up, norm in zip(self.ups, self.norms, strict=True):
            h = self._cat(F.relu(norm(up(h))), maps, chord)
            if str(h.shape[2]) in self.attention:
                h = self.attention[str(h.shape[2])](h)
        return self.out(h)[:, 0]  # (B, 16, 129)

    @staticmethod
    def _cat(h: Tensor, maps: dict[int, Tensor], chord: Tensor | None) -> Tensor:
        parts = [h, maps[h.shape[2]]]
        if chord is not None:
            parts.append(chord[:, :, None, None].expand(-1, -1, h.shape[2], 1))
        return torch.cat(parts, dim=1)


def time_it(fn, steps: int) -> float:
    """Median milliseconds per call over `steps` calls, after 3 warm-up calls."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * sorted(times)[len(times) // 2]


def measure(model: MidiNet, batch: dict[str, Tensor], steps: int) -> tuple[float, float]:
    """(generator forward + backward ms, full training step ms) of `model`."""
    objective = AdversarialObjective(model, OptimConfig(lr=2e-4, betas=(0.5, 0.999)))

    def generator_pass() -> None:
        model.generator.zero_grad(set_to_none=True)
        logits = model.generate_logits(batch["prev"], model.chord_input(batch))
        logits.square().mean().backward()

    return time_it(generator_pass, steps), time_it(lambda: objective.train_step(batch, 0), steps)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=72)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--no-attention", action="store_true")
    parser.add_argument("--chords", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = MidiNetConfig(attention=not args.no_attention, chords=args.chords)
    ours = MidiNet(cfg)
    theirs = MidiNet(cfg)
    theirs.generator = TransposedConvGenerator(cfg)
    batch = ours.example_batch(args.batch)
    counts = [sum(p.numel() for p in m.generator.parameters()) for m in (ours, theirs)]
    print(f"MidiNet step time, batch {args.batch}, {args.threads} thread(s), attention {cfg.attention}, "
          f"chords {cfg.chords}, median of {args.steps}")
    print(f"generator parameters: Linear+reshape {counts[0]:,}  transposed-conv {counts[1]:,} "
          "(ours has one more output class per step: the rest)")
    rows = {name: measure(model, batch, args.steps) for name, model in (("Linear+reshape", ours),
                                                                       ("ConvTranspose2d", theirs))}
    print(f"{'generator':<18}{'G fwd+bwd ms':>14}{'train step ms':>15}")
    for name, (g, step) in rows.items():
        print(f"{name:<18}{g:>14.2f}{step:>15.2f}")
    (g0, s0), (g1, s1) = rows["Linear+reshape"], rows["ConvTranspose2d"]
    print(f"{'speed-up':<18}{g1 / g0:>13.2f}x{s1 / s0:>14.2f}x")


if __name__ == "__main__":
    main()
