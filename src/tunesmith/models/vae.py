"""What the VAE families share (`lstm_vae.py`, `conv_vae.py`): a diagonal Gaussian posterior, the KL
term with linear annealing and free bits, the active-unit count, and the ELBO.

Units: KL in nats per window (summed over latent dimensions), per dimension where the name says so.

- KL annealing (Bowman et al. 2016): the KL weight grows linearly from 0 to 1 over `kl_warmup_steps`
  optimizer steps (`kl_weight`), so the decoder learns to use z before the KL pushes q to the prior.
- Free bits (Kingma et al. 2016): each latent dimension's KL, averaged over the batch, counts at
  least `free_bits` nats (`free_bits_kl`): below it, it is not pushed further towards the prior. The
  seed projects used neither, and their KL went to 0.015 nats (a collapsed latent).
- Active units (Burda et al. 2016): dimensions whose posterior mean varies over the inputs,
  Var_x(E_q[z_d | x]) > 0.01 (`active_units`).

Training loss (per unit = token or frame): (reconstruction NLL + w * free-bits KL) / units. The
weight and the floor only shape training; the ELBO the families report (`negative_elbo`, the
validation loss, `log_likelihood`) is always the plain bound: reconstruction NLL + KL.
"""

from __future__ import annotations

import torch
from torch import Tensor

AU_THRESHOLD = 0.01  # the standard active-unit threshold on the posterior-mean variance


def kl_per_dim(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per example and dimension: (B, D) -> (B, D) nats."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def kl_weight(step: int, warmup_steps: int) -> float:
    """Linear KL annealing: step / warmup_steps, capped at 1; 1 from the start when warmup_steps is 0."""
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, step / warmup_steps)


def free_bits_kl(kl: Tensor, free_bits: float) -> Tensor:
    """The KL the loss sees, nats per window: sum_d max(mean_batch KL_d, free_bits); kl (B, D)."""
    return kl.mean(0).clamp(min=free_bits).sum()


def active_units(mu: Tensor, threshold: float = AU_THRESHOLD) -> int:
    """Latent dimensions whose posterior mean varies over the batch: #{d : Var_b(mu_bd) > threshold};
    mu (B, D); the population variance (a batch of one has none active)."""
    if len(mu) < 2:
        return 0
    return int((mu.var(0, unbiased=False) > threshold).sum())


def reparameterize(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """A draw z ~ N(mu, exp(logvar)): (B, D) -> (B, D), differentiable in mu and logvar."""
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + eps * (0.5 * logvar).exp()


class LatentTerms(torch.nn.Module):
    """The KL part of a VAE loss and its logs; counts optimizer steps for the annealing schedule.

    The step count is a buffer, so it is saved in checkpoints and a resumed run keeps its schedule.
    It advances on each training-mode call with gradients on (one per optimizer step).
    """

    def __init__(self, warmup_steps: int, free_bits: float) -> None:
        super().__init__()
        self.warmup_steps, self.free_bits = warmup_steps, free_bits
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))

    def forward(self, mu: Tensor, logvar: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """(mu, logvar) (B, D) -> (KL the loss sees summed over the batch, true KL summed over the batch,
        logs: "kl" (nats per window), "kl_weight", "active_units")."""
        kl = kl_per_dim(mu, logvar)
        train = self.training and torch.is_grad_enabled()
        weight = kl_weight(int(self.step), self.warmup_steps) if train else 1.0
        shaped = weight * free_bits_kl(kl, self.free_bits) * len(mu) if train else kl.sum()
        if train:
            self.step += 1
        logs = {"kl": kl.sum(1).mean().detach(), "kl_weight": torch.tensor(weight),
                "active_units": torch.tensor(float(active_units(mu.detach())))}
        return shaped, kl.sum(), logs


def negative_elbo(recon_nll: Tensor, kl: Tensor) -> Tensor:
    """-ELBO in nats: reconstruction NLL + KL (both summed over the same examples)."""
    return recon_nll + kl


def slerp(a: Tensor, b: Tensor, t: float) -> Tensor:
    """Spherical interpolation between latent vectors a, b (D,) at t in [0, 1] (White 2016): it keeps
    the norm that draws from N(0, I) have, which linear midpoints lose; linear for (anti)parallel ones."""
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp(min=1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if float(torch.sin(omega).abs()) < 1e-6:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
