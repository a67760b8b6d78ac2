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
- A fitted prior for sampling (`MixturePrior`, ex-post density estimation, Ghosh et al. 2020): a VAE
  trained with free bits leaves holes in N(0, I) that no training window's posterior covers, and the
  decoder writes chromatic, keyless music there. A diagonal Gaussian mixture fitted by EM to the
  training windows' posteriors (`fit_mixture`) is what sampling then draws from; the ELBO the families
  report still uses N(0, I).

Training loss (per unit = token or frame): (reconstruction NLL + w * free-bits KL) / units. The
weight and the floor only shape training; the ELBO the families report (`negative_elbo`, the
validation loss, `log_likelihood`) is always the plain bound: reconstruction NLL + KL.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from tunesmith.core.errors import UserError

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


def fit_mixture(mu: Tensor, var: Tensor, components: int, iters: int = 100, seed: int = 0
                ) -> tuple[Tensor, Tensor, Tensor, float]:
    """EM for a diagonal Gaussian mixture of the aggregate posterior (1/N) sum_i N(mu_i, diag(var_i)):
    mu, var (N, D) -> (weights (K,), means (K, D), variances (K, D), mean log-density of the mu_i in nats
    per window). Each component's variance adds its windows' mean posterior variance to the spread of
    their means, so the mixture covers what the posteriors cover; means start at K distinct seeded mu_i."""
    if components < 1 or components > len(mu):
        raise UserError(f"a prior of {components} components needs at least as many windows, got {len(mu)}")
    generator = torch.Generator().manual_seed(seed)
    means = mu[torch.randperm(len(mu), generator=generator)[:components]].clone()
    variances = (mu.var(0, unbiased=False) + var.mean(0)).expand(components, -1).clone()
    weights = torch.full((components,), 1.0 / components)
    for _ in range(iters):
        log_joint = _log_normal(mu, means, variances) + weights.log()
        resp = log_joint.softmax(1)  # (N, K) responsibilities
        counts = resp.sum(0) + 1e-8
        means = resp.T @ mu / counts[:, None]
        spread = resp.T @ mu.pow(2) / counts[:, None] - means.pow(2)
        variances = (spread + resp.T @ var / counts[:, None]).clamp(min=1e-4)
        weights = counts / counts.sum()
    log_density = torch.logsumexp(_log_normal(mu, means, variances) + weights.log(), dim=1).mean()
    return weights, means, variances, float(log_density)


def _log_normal(x: Tensor, means: Tensor, variances: Tensor) -> Tensor:
    """log N(x_i; means_k, diag(variances_k)): x (N, D), means / variances (K, D) -> (N, K) nats."""
    diff = x[:, None] - means
    return -0.5 * (diff.pow(2) / variances + variances.log() + math.log(2 * math.pi)).sum(-1)


class MixturePrior(nn.Module):
    """The prior that sampling draws from: z = means_c + scales_c * u, component c drawn once per piece by
    `weights`, u (n, D) standard normal (so a chain of u's with correlation rho stays in its component).
    Until `fit` it is N(0, I) (one component at 0 with scale 1); buffers, so checkpoints keep it."""

    def __init__(self, latent_dim: int, components: int) -> None:
        super().__init__()
        self.register_buffer("weights", torch.full((components,), 1.0 / components))
        self.register_buffer("means", torch.zeros(components, latent_dim))
        self.register_buffer("scales", torch.ones(components, latent_dim))

    @torch.no_grad()
    def fit(self, mu: Tensor, var: Tensor, iters: int = 100, seed: int = 0) -> float:
        """Fit to posteriors mu, var (N, D) (`fit_mixture`); returns the mean log-density (nats per window)."""
        weights, means, variances, log_density = fit_mixture(mu, var, len(self.weights), iters, seed)
        self.weights.copy_(weights), self.means.copy_(means), self.scales.copy_(variances.sqrt())
        return log_density

    def draw_components(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n component indices (n,) int64, drawn by the mixture weights."""
        return torch.multinomial(self.weights.float(), n, replacement=True, generator=generator)

    def place(self, u: Tensor, components: Tensor) -> Tensor:
        """Standard normal u (n, D) -> latents (n, D) in components (n,)."""
        return self.means[components].float() + self.scales[components].float() * u
