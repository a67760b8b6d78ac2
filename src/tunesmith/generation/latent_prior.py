"""Fit the sampling prior of a VAE checkpoint (`tunesmith fit-prior`): ex-post density estimation.

A VAE trained with free bits spreads its posteriors over the latent space, but not over all of N(0, I):
draws from N(0, I) land in holes that no training window's posterior covers, and the decoder writes
keyless, chromatic music there (bach-vae: prior samples in 18 different keys, PCH KL 0.41 against the
chorale melodies; its training windows' posteriors give 0.01). `fit_prior` encodes every whole training
window of the checkpoint's own training split (no padding, so none stands for a piece's end), fits a
diagonal Gaussian mixture to those posteriors (`models.vae.fit_mixture`) and writes the checkpoint with
`prior_components` set and the mixture in its weights; `generate` then samples from it.

The training pieces are read as the checkpoint's recipe read them (source, split, key normalisation)
but without transposition augmentation: the shifted copies put the other keys back into the prior. The
split must still be the checkpoint's (its train ids fingerprint), else the fit is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tunesmith.core.errors import UserError
from tunesmith.generation.latent import load_latent_model
from tunesmith.models.checkpoint import LoadedModel, save_checkpoint

BATCH = 256  # windows encoded per forward pass


def training_posteriors(loaded: LoadedModel) -> tuple[torch.Tensor, torch.Tensor]:
    """The posteriors (mu, logvar) (N, D) of the whole training windows of a checkpoint, its training
    pieces read without transposition augmentation."""
    from torch.utils.data import DataLoader

    from tunesmith.data.build import prepare_data
    from tunesmith.data.config import DataConfig

    section = (loaded.checkpoint.get("run_config") or {}).get("data")
    if not isinstance(section, dict):
        raise UserError(f"{loaded.path} does not record the data it was trained on (run_config.data), so its "
                        "prior cannot be fitted")
    model = loaded.model
    data = prepare_data(DataConfig(**{**section, "transpose": 0}), model.data_kind, loaded.representation)
    saved = (loaded.checkpoint.get("provenance") or {}).get("train_ids_sha256")
    if saved and saved != data.provenance["train_ids_sha256"]:
        raise UserError(f"{section.get('source')} no longer holds the pieces {loaded.path} was trained on "
                        f"(train ids {data.provenance['train_ids_sha256']}, the checkpoint's {saved})")
    mus, logvars = [], []
    for batch in DataLoader(data.train, batch_size=BATCH):
        mu, logvar, whole = model.batch_posterior(batch)
        mus.append(mu[whole])
        logvars.append(logvar[whole])
    return torch.cat(mus), torch.cat(logvars)


def fit_prior(checkpoint: str | Path, out: Path, components: int = 8, seed: int = 0) -> dict[str, Any]:
    """Write `checkpoint` to `out` with a `components`-Gaussian mixture prior fitted to its training
    posteriors; returns the record stored as the checkpoint's "latent_prior"."""
    loaded = load_latent_model(checkpoint)
    if not hasattr(loaded.model, "batch_posterior"):
        raise UserError(f"{checkpoint}: a {loaded.name} model has no fitted prior to sample from")
    if components < 1:
        raise UserError(f"--components must be at least 1, got {components}")
    mu, logvar = training_posteriors(loaded)
    if len(mu) < components:
        raise UserError(f"{checkpoint}: {len(mu)} whole training windows cannot fit {components} components")
    model = rebuild_with_prior(loaded, components)
    log_density = model.prior.fit(mu, logvar.exp(), seed=seed)
    record = {"components": components, "seed": seed, "windows": len(mu), "log_density_nats": round(log_density, 3),
              "data": "the checkpoint's training split, whole windows, key as trained, no transposition"}
    old = loaded.checkpoint["weights"]
    weights = {k: v.to(old[k].dtype) if k in old else v for k, v in model.state_dict().items()}
    payload = {k: v for k, v in loaded.checkpoint.items() if k != "format"}
    payload["model"] = {**payload["model"], "config": {**payload["model"]["config"], "prior_components": components}}
    save_checkpoint({**payload, "weights": weights, "latent_prior": record}, Path(out))
    return record


def rebuild_with_prior(loaded: LoadedModel, components: int) -> torch.nn.Module:
    """The loaded network rebuilt with a `components`-mixture prior (N(0, I) until fitted; 0: no mixture,
    sampling from N(0, I)), its other weights kept."""
    from tunesmith.models import build_model

    config = {**loaded.checkpoint["model"]["config"], "prior_components": components}
    model = build_model(loaded.name, config)
    kept = {k: v for k, v in loaded.model.state_dict().items() if not k.startswith("prior.")}
    missing, unexpected = model.load_state_dict(kept, strict=False)
    assert not unexpected and all(k.startswith("prior.") for k in missing), (missing, unexpected)
    return model.eval()
