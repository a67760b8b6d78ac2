"""The fitted sampling prior of the VAE families (`models.vae.MixturePrior`, `tunesmith fit-prior`): EM on
known mixtures, sampling that draws from the fitted components, and the command end to end on tiny runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tunesmith.cli import app
from tunesmith.core.errors import UserError
from tunesmith.generation.generate import GenerateRequest, generate_scores
from tunesmith.generation.latent_prior import fit_prior, training_posteriors
from tunesmith.models import build_model, make_config
from tunesmith.models.base import SamplePlan
from tunesmith.models.checkpoint import load_model
from tunesmith.models.vae import MixturePrior, fit_mixture
from tunesmith.representations import get_representation
from tunesmith.training.config import load_config
from tunesmith.training.loop import train

ROOT = Path(__file__).resolve().parents[1]
GRID = get_representation("grid")

pytestmark = pytest.mark.usefixtures("one_thread")


def test_em_recovers_two_separated_clusters_and_adds_the_posterior_variance():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-4.0, 0.0, 2.0], [4.0, 1.0, -2.0]])
    labels = (torch.rand(3000, generator=g) < 0.3).long()  # 30 % in the second cluster
    mu = centres[labels] + 0.5 * torch.randn(3000, 3, generator=g)
    var = torch.full((3000, 3), 0.09)  # every posterior has sd 0.3 around its mean
    weights, means, variances, log_density = fit_mixture(mu, var, 2)
    order = means[:, 0].argsort()
    assert torch.allclose(weights[order], torch.tensor([0.7, 0.3]), atol=0.03)
    assert torch.allclose(means[order], centres, atol=0.1)
    assert torch.allclose(variances, torch.full((2, 3), 0.25 + 0.09), atol=0.05)  # spread of means + posterior
    assert np.isfinite(log_density)
    with pytest.raises(UserError, match="components"):
        fit_mixture(mu[:3], var[:3], 4)


def test_an_unfitted_prior_is_the_standard_normal_and_a_fitted_one_places_draws_in_its_components():
    prior = MixturePrior(2, 3)
    u = torch.randn(5, 2)
    assert torch.equal(prior.place(u, prior.draw_components(5)), u)
    prior.means.copy_(torch.tensor([[10.0, 0.0], [0.0, 10.0], [-10.0, 0.0]]))
    prior.weights.copy_(torch.tensor([0.0, 1.0, 0.0]))
    prior.scales.fill_(0.5)
    comps = prior.draw_components(100, torch.Generator().manual_seed(0))
    assert (comps == 1).all()
    assert torch.allclose(prior.place(torch.zeros(2, 2), comps[:2]), torch.tensor([[0.0, 10.0]] * 2))


@pytest.mark.parametrize("rho", [0.0, 1.0])
def test_lstm_vae_samples_every_window_of_a_piece_from_one_component(rho):
    cfg = make_config("lstm-vae", {"window": 12, "embed_dim": 8, "encoder_hidden": 8, "latent_dim": 4,
                                   "decoder_hidden": 16, "window_correlation": rho, "prior_components": 2},
                      {"vocab_size": GRID.vocab_size, "pad_id": GRID.pad_id})
    model = build_model("lstm-vae", cfg)
    model.prior.means.copy_(torch.tensor([[50.0] * 4, [-50.0] * 4]))
    model.prior.scales.fill_(0.1)
    seen = []
    decode = model.decode_latents
    model.decode_latents = lambda z, *args: seen.append(z.clone()) or decode(z, *args)
    pieces = model.sample(SamplePlan(n=6, bars=3), torch.Generator().manual_seed(1))
    assert len(pieces) == 6 and len(seen) == 4  # 48 tokens: four 12-token windows
    signs = torch.stack([z.sign() for z in seen])  # (windows, pieces, D)
    assert (signs == signs[0]).all()  # a piece stays in the component it drew
    assert {float(s) for s in signs[0, :, 0]} == {-1.0, 1.0}  # and both components are drawn (weights 0.5)
    assert all((z.abs() - 50).abs().max() < 1 for z in seen)


def test_conv_vae_draws_one_component_per_piece():
    model = build_model("conv-vae", make_config("conv-vae", {"window": 16, "latent_dim": 4, "channels": 4,
                                                             "layers": 2, "hidden": 16, "prior_components": 3}, {}))
    placed = []
    place = model.prior.place
    model.prior.place = lambda u, comps: placed.append(comps.clone()) or place(u, comps)
    rolls = model.sample(SamplePlan(n=2, bars=2), torch.Generator().manual_seed(0))  # 32 steps: 2 windows each
    assert [r.shape for r in rolls] == [(32, 88, 2)] * 2
    (comps,) = placed
    assert len(comps) == 4 and comps[0] == comps[1] and comps[2] == comps[3]


@pytest.fixture(scope="module")
def debug_run(tmp_path_factory) -> Path:
    config = load_config(ROOT / "configs" / "debug" / "lstm-vae.yaml")
    config.trainer.max_epochs = 2  # a fitted prior needs a trained encoder, not a good one
    return train(config, tmp_path_factory.mktemp("vae") / "run")


def test_fit_prior_end_to_end_writes_a_checkpoint_that_generates_from_its_mixture(debug_run, tmp_path):
    out = tmp_path / "fitted.ckpt"
    result = CliRunner().invoke(app, ["fit-prior", str(debug_run), "--out", str(out), "--components", "3"])
    assert result.exit_code == 0, result.output
    assert "3 components fitted to" in result.output
    loaded = load_model(out)
    record = loaded.checkpoint["latent_prior"]
    assert loaded.model.config.prior_components == 3 and record["components"] == 3
    mu, _ = training_posteriors(loaded)
    assert record["windows"] == len(mu) > 3
    assert torch.allclose(loaded.model.prior.weights.sum(), torch.tensor(1.0))
    assert not torch.equal(loaded.model.prior.means, torch.zeros_like(loaded.model.prior.means))
    # the rest of the network is the run's
    before = load_model(debug_run).model.state_dict()
    after = loaded.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    scores = generate_scores(loaded, GenerateRequest(n=2, bars=4, seed=0))
    assert len(scores) == 2 and all(s.note_num() > 0 for s in scores)
    with pytest.raises(UserError, match="components"):
        fit_prior(debug_run, tmp_path / "x.ckpt", components=0)


def test_fit_prior_bad_input_is_one_sentence_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tunesmith.cli", "fit-prior", str(tmp_path / "missing.ckpt"),
                           "--out", str(tmp_path / "o.ckpt")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().startswith("error:") and len(proc.stderr.strip().splitlines()) == 1
