"""Latent predictors of the next window (the egrillot "MelodyNNs", fixed): the `band` family's stage two.

Latents are per instrument group, (B, 5, D), from the shared window autoencoder (`window_ae.py`).

- Piano: z_t -> z_{t+1}. Conditional, every other group i: (w_t^i, z_{t+1}) -> w_{t+1}^i, as the seed.
  Both also see the whole band at t (all five latents): in the band files piano is silent in 59 % of
  the songs, and a chain whose only memory is a silent piano forgets the music.
- Each predictor is an MLP (`layers` x [Linear `hidden`, ReLU, Dropout]) that outputs a diagonal
  Gaussian (mean, log-variance) of the next latent, trained by Gaussian negative log-likelihood; the
  mean is the group's own latent at t plus the MLP's output (music repeats: copying the last window
  is a strong first guess, which the residual form starts from). The
  seed's MSE regression predicts the mean of the possible futures, which decodes to ever thinner
  windows (the drift to silence); a distribution can be sampled, so pieces differ and stay full.
- In training the inputs get Gaussian noise of std `input_noise`: at generation time the inputs are
  the predictor's own samples, not encoder outputs, and must not throw it off.

Logs: "pred_nll" (nats per latent dimension), "pred_mse/GROUP" (mean squared error of the predicted mean
per dimension: the seed's figure; piano 0.029 there) and "target_var/GROUP" (variance of the target
latents: MSE / variance is the share of the latent's variation left unexplained).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from tunesmith.core.constants import MULTITRACK_GROUPS

N_GROUPS = len(MULTITRACK_GROUPS)
PIANO = MULTITRACK_GROUPS.index("piano")
LOGVAR_RANGE = (-9.0, 4.0)  # variances from about 1e-4 to 55: keeps the NLL finite on a flat batch


def mlp(n_in: int, n_out: int, hidden: int, layers: int, dropout: float) -> nn.Sequential:
    """`layers` x [Linear hidden, ReLU, Dropout] -> Linear n_out."""
    parts: list[nn.Module] = []
    for i in range(layers):
        parts += [nn.Linear(n_in if i == 0 else hidden, hidden), nn.ReLU(), nn.Dropout(dropout)]
    parts.append(nn.Linear(hidden if layers else n_in, n_out))
    return nn.Sequential(*parts)


class LatentPredictors(nn.Module):
    """The piano predictor and one conditional predictor per other group (see module docstring)."""

    def __init__(self, latent_dim: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.latent_dim = d = latent_dim
        self.piano = mlp(N_GROUPS * d, 2 * d, hidden, layers, dropout)
        self.others = nn.ModuleList(mlp((N_GROUPS + 1) * d, 2 * d, hidden, layers, dropout)
                                    for _ in range(N_GROUPS - 1))

    def piano_next(self, band: Tensor) -> tuple[Tensor, Tensor]:
        """band (B, 5, D) at t -> (mean, logvar) (B, D) of piano's latent at t+1."""
        mean, logvar = _gaussian(self.piano(band.flatten(1)))
        return band[:, PIANO] + mean, logvar

    def others_next(self, band: Tensor, piano_next: Tensor) -> tuple[Tensor, Tensor]:
        """band (B, 5, D) at t and piano's latent (B, D) at t+1 -> (mean, logvar) (B, 4, D) of the other
        groups at t+1, in group order without piano. Each group's own w_t is in the band."""
        x = torch.cat([band.flatten(1), piano_next], dim=1)
        stats = [_gaussian(net(x)) for net in self.others]
        own = torch.cat([band[:, :PIANO], band[:, PIANO + 1:]], dim=1)
        return own + torch.stack([m for m, _ in stats], 1), torch.stack([v for _, v in stats], 1)

    def loss(self, z_t: Tensor, z_next: Tensor, valid: Tensor, input_noise: float, training: bool
             ) -> tuple[Tensor, dict[str, Tensor]]:
        """Gaussian NLL (nats per dimension) of z_next (B, 5, D) given z_t (B, 5, D) and, for the
        conditional predictors, piano's z_next; `valid` (B,) bool marks items whose next window is real
        music (not padding past a piece's end). Targets and inputs carry no gradient to the encoder."""
        z_t, z_next = z_t.detach(), z_next.detach()
        noise = (lambda x: x + input_noise * torch.randn_like(x)) if training else (lambda x: x)
        mean_p, logvar_p = self.piano_next(noise(z_t))
        mean_o, logvar_o = self.others_next(noise(z_t), noise(z_next[:, PIANO]))
        mean = _insert(mean_o, mean_p)
        logvar = _insert(logvar_o, logvar_p)
        nll = 0.5 * (logvar + (z_next - mean).pow(2) / logvar.exp() + math.log(2 * math.pi))
        weight = valid.float()[:, None, None]
        count = weight.sum().clamp(min=1)
        loss = (nll * weight).sum() / (count * N_GROUPS * self.latent_dim)
        sq = ((mean.detach() - z_next).pow(2) * weight).sum((0, 2)) / (count * self.latent_dim)
        var = _masked_var(z_next, valid)
        logs = {"pred_nll": loss.detach()}
        for g, name in enumerate(MULTITRACK_GROUPS):
            logs[f"pred_mse/{name}"], logs[f"target_var/{name}"] = sq[g], var[g]
        return loss, logs

    @torch.no_grad()
    def step(self, band: Tensor, temperature: float, generator: torch.Generator | None) -> Tensor:
        """One window ahead: band (B, 5, D) at t -> a draw (B, 5, D) at t+1 (piano first, the others on
        it); the predicted std is scaled by `temperature` (0: the means)."""
        mean_p, logvar_p = self.piano_next(band)
        piano = _draw(mean_p, logvar_p, temperature, generator)
        mean_o, logvar_o = self.others_next(band, piano)
        return _insert(_draw(mean_o, logvar_o, temperature, generator), piano)


def _gaussian(out: Tensor) -> tuple[Tensor, Tensor]:
    mean, logvar = out.chunk(2, dim=-1)
    return mean, logvar.clamp(*LOGVAR_RANGE)


def _insert(others: Tensor, piano: Tensor) -> Tensor:
    """(B, 4, D) of the non-piano groups and (B, D) of piano -> (B, 5, D) in group order."""
    return torch.cat([others[:, :PIANO], piano[:, None], others[:, PIANO:]], dim=1)


def _draw(mean: Tensor, logvar: Tensor, temperature: float, generator: torch.Generator | None) -> Tensor:
    eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + temperature * eps * (0.5 * logvar).exp()


def _masked_var(z: Tensor, valid: Tensor) -> Tensor:
    """Variance over the valid items of z (B, 5, D), mean over dimensions: (5,); 0 with under 2 items."""
    rows = z[valid]
    if len(rows) < 2:
        return torch.zeros(z.shape[1])
    return rows.var(0, unbiased=False).mean(-1)
