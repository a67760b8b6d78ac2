"""The window a band piece starts from when there is no primer (`band.BandModel.chain`).

`StartDistribution` is a mixture of diagonal Gaussians over one window's five latents, fitted by maximum
likelihood to the training windows' latents. With `patterns` it also counts which groups sound together in
each training window (32 patterns of 5 groups), and `draw` starts from a pattern drawn at those odds: the
mixture alone starts too many windows with every part sounding (band-5: strings in 99 % of start windows,
piano 68 %, guitar 66 %; training windows 81, 43, 41 %), since a draw near an empty window's latent still
decodes to a few notes. A draw then keeps the first of `tries` candidates in which every group of the
pattern sounds, and the groups outside it get the encoding of an empty window.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from tunesmith.models.latent_predictor import LOGVAR_RANGE
from tunesmith.models.window_ae import N_GROUPS

N_PATTERNS = 1 << N_GROUPS  # bit g set: group g sounds
BITS = 1 << torch.arange(N_GROUPS)


class StartDistribution(nn.Module):
    """A mixture of `components` diagonal Gaussians over a window's five latents, flattened (5 x D):
    the modes of a band (which instruments play) are discrete, which one Gaussian would blur into
    windows where every instrument half plays. `patterns`: count the training windows' sounding patterns
    (`count_patterns`) and draw starts by them (`draw`)."""

    def __init__(self, size: int, components: int, patterns: bool = False) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(components))
        self.mean = nn.Parameter(0.1 * torch.randn(components, size, generator=torch.Generator().manual_seed(0)))
        self.logvar = nn.Parameter(torch.zeros(components, size))
        if patterns:  # only with the flag, so checkpoints without it load and draw as before
            self.register_buffer("patterns", torch.zeros(N_PATTERNS, dtype=torch.int64))

    def nll(self, z: Tensor) -> Tensor:
        """Mean negative log-likelihood of z (B, 5, D), nats per dimension."""
        x = z.flatten(1)[:, None]  # (B, 1, size)
        logvar = self.logvar.clamp(*LOGVAR_RANGE)
        log_normal = -0.5 * (logvar + (x - self.mean).pow(2) / logvar.exp() + math.log(2 * math.pi)).sum(-1)
        log_p = torch.logsumexp(log_normal + self.logits.log_softmax(0), dim=1)
        return -log_p.mean() / z[0].numel()

    @torch.no_grad()
    def sample(self, n: int, temperature: float, generator: torch.Generator | None) -> Tensor:
        """(n, size): a component by its weight, then a draw with its std scaled by `temperature`."""
        k = torch.multinomial(self.logits.softmax(0), n, replacement=True, generator=generator)
        eps = torch.randn(n, self.mean.shape[1], generator=generator)
        return self.mean[k] + temperature * eps * (0.5 * self.logvar[k].clamp(*LOGVAR_RANGE)).exp()

    @torch.no_grad()
    def count_patterns(self, planes: Tensor, mask: Tensor) -> None:
        """Add the patterns of a batch's whole real windows: planes (B, 5, 2, W, 128), mask (B, W) of real steps;
        a group sounds in a window where its sustain plane holds a note."""
        sounds = planes[:, :, 1].flatten(2).any(-1)[mask.all(1)]  # (whole windows, 5)
        codes = (sounds.long().cpu() * BITS).sum(1)
        self.patterns += torch.bincount(codes, minlength=N_PATTERNS).to(self.patterns)

    @torch.no_grad()
    def draw(self, n: int, temperature: float, generator: torch.Generator | None, silent: Tensor,
             sounding: Callable[[Tensor], Tensor], tries: int = 16) -> Tensor:
        """(n, 5, D) start latents. Without counted patterns: `sample`. With them, per start: a pattern at the
        training windows' odds, then of `tries` draws the first in which every group of the pattern sounds
        (`sounding`: latents (N, 5, D) -> bool (N, 5); none: the one with most of them), its other groups
        set to `silent` (5, D), the encoding of an empty window."""
        if not hasattr(self, "patterns") or not int(self.patterns.sum()):
            return self.sample(n, temperature, generator).reshape(n, N_GROUPS, -1)
        codes = torch.multinomial(self.patterns.double(), n, replacement=True, generator=generator)
        wanted = (codes[:, None] & BITS).bool()  # (n, 5)
        candidates = self.sample(n * tries, temperature, generator).reshape(n, tries, N_GROUPS, -1)
        heard = sounding(candidates.flatten(0, 1)).reshape(n, tries, N_GROUPS)
        covered = (heard & wanted[:, None]).sum(-1) + N_GROUPS * (heard | ~wanted[:, None]).all(-1)
        best = covered.argmax(1)  # the first of the most covering: a full cover scores above any partial one
        start = candidates[torch.arange(n), best]
        return torch.where(wanted[..., None], start, silent.to(start.dtype))
