"""VAE families (`lstm-vae`, `conv-vae`): KL annealing and free bits, active units, the ELBO as a bound,
debug training runs, and latent interpolation / reconstruction through MIDI files."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tunesmith.core.errors import UserError
from tunesmith.generation.latent import interpolate, latent_path, reconstruct
from tunesmith.io.midi import read_midi
from tunesmith.models import build_model, make_config
from tunesmith.models.base import SamplePlan
from tunesmith.models.checkpoint import save_checkpoint
from tunesmith.models.vae import (
    LatentTerms,
    active_units,
    free_bits_kl,
    kl_per_dim,
    kl_weight,
    slerp,
)
from tunesmith.representations import get_representation
from tunesmith.training.config import load_config
from tunesmith.training.loop import train

ROOT = Path(__file__).resolve().parents[1]
MELODIES = ROOT / "tests/fixtures/realmidi/sara_munafo_gan_nndl"
PIECE_A = MELODIES / "Melody_from_training_set__melody_train_1.midi"
PIECE_B = MELODIES / "Sampled_songs__sample_gen_song_6.midi"
GRID = get_representation("grid")


pytestmark = pytest.mark.usefixtures("one_thread")  # small models: one thread, as training


# ---- the KL term ------------------------------------------------------------------------------------


def test_kl_of_a_gaussian_against_the_prior_by_hand():
    mu = torch.tensor([[1.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)]])
    # 0.5 * (mu^2 + var - 1 - log var): 0.5 * 1 = 0.5, and 0.5 * (2 - 1 - ln 2) = 0.1534
    assert torch.allclose(kl_per_dim(mu, logvar), torch.tensor([[0.5, 0.5 * (1 - math.log(2.0))]]))


def test_kl_weight_grows_linearly_then_stays_at_one():
    assert [kl_weight(s, 100) for s in (0, 25, 50, 100, 250)] == [0.0, 0.25, 0.5, 1.0, 1.0]
    assert kl_weight(0, 0) == 1.0  # no warm-up: the full KL from the first step


def test_free_bits_floor_each_dimension_of_the_batch_mean_and_stop_its_gradient():
    kl = torch.tensor([[0.0, 0.5, 2.0], [0.2, 0.1, 2.0]], requires_grad=True)
    total = free_bits_kl(kl, 0.25)  # batch means 0.1, 0.3, 2.0 -> max(., 0.25) = 0.25, 0.3, 2.0
    assert total.item() == pytest.approx(2.55)
    total.backward()
    assert torch.equal(kl.grad[:, 0], torch.zeros(2))  # below the floor: not pushed further down
    assert torch.allclose(kl.grad[:, 1:], torch.full((2, 2), 0.5))  # d mean / d kl = 1 / batch


def test_latent_terms_anneal_per_training_step_and_report_the_plain_kl_in_eval():
    terms = LatentTerms(warmup_steps=4, free_bits=0.0).train()
    mu, logvar = torch.ones(3, 2), torch.zeros(3, 2)  # KL 0.5 per dimension, 1.0 per window
    seen = [float(terms(mu, logvar)[0]) for _ in range(6)]
    assert seen == pytest.approx([0.0, 0.75, 1.5, 2.25, 3.0, 3.0])  # weight s/4 x 3 windows x 1 nat
    assert int(terms.step) == 6
    shaped, true_kl, logs = terms.eval()(mu, logvar)
    assert float(shaped) == float(true_kl) == pytest.approx(3.0) and int(terms.step) == 6
    assert float(logs["kl"]) == pytest.approx(1.0)


def test_active_units_count_dimensions_whose_posterior_mean_varies():
    spread = torch.tensor([-1.0, 1.0, -1.0, 1.0])  # population variance 1
    mu = torch.stack([spread * 2, torch.full((4,), 3.0), spread * 0.07, spread * 0.15], dim=1)
    # variances 4, 0, 0.0049, 0.0225: two dimensions above 0.01
    assert active_units(mu) == 2
    assert active_units(mu[:1]) == 0


def test_slerp_keeps_the_norm_and_hits_the_end_points():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert torch.allclose(slerp(a, b, 0.0), a) and torch.allclose(slerp(a, b, 1.0), b)
    assert slerp(a, b, 0.5).norm().item() == pytest.approx(1.0)  # linear: 0.707
    path = latent_path(a, b, 5, spherical=False)
    assert path.shape == (5, 2) and torch.allclose(path[2], torch.tensor([0.5, 0.5]))


# ---- the ELBO is a bound ---------------------------------------------------------------------------------


def test_the_elbo_is_below_the_exact_log_likelihood_computed_by_quadrature():
    """With a 1-d latent, log p(x) = log integral N(z; 0, 1) p(x | z) dz is computable on a grid of z."""
    torch.manual_seed(3)
    config = {"window": 12, "embed_dim": 8, "encoder_hidden": 8, "latent_dim": 1, "decoder_hidden": 16,
              "elbo_samples": 200, "dropout": 0.0}
    model = build_model("lstm-vae", make_config("lstm-vae", config, {"vocab_size": 12, "pad_id": 0})).eval()
    with torch.no_grad():  # a decoder that depends on z, so the posterior is not the prior
        model.to_state.weight.mul_(8.0)
    seq = torch.tensor([1, 5, 6, 4, 4, 7, 3, 8, 4, 9, 5, 2])  # [bos] ... [eos]: 11 predicted tokens
    elbo, units = model.log_likelihood(seq.numpy())
    z = torch.linspace(-10, 10, 4001)[:, None]
    with torch.no_grad():
        logits = model.decode_logits(seq[None, :-1].expand(len(z), -1), z)
    log_px_z = logits.log_softmax(-1).gather(-1, seq[None, 1:, None].expand(len(z), -1, 1)).sum((1, 2))
    log_prior = -0.5 * z[:, 0] ** 2 - 0.5 * math.log(2 * math.pi)
    exact = float(torch.logsumexp(log_px_z + log_prior, 0) + math.log(20 / 4000))
    assert units == 11
    assert elbo <= exact
    assert exact - elbo < 5.0  # a bound, but not a vacuous one


def _losses(run: Path, split: str, name: str) -> list[float]:
    with open(run / "metrics.csv", newline="") as handle:
        return [float(r["value"]) for r in csv.DictReader(handle) if r["split"] == split and r["name"] == name]


@pytest.mark.parametrize("family", ["lstm-vae", "conv-vae"])
def test_a_debug_run_lowers_the_validation_bound_and_logs_the_latent(family, tmp_path):
    run = train(load_config(ROOT / "configs" / "debug" / f"{family}.yaml"), tmp_path / "run")
    nelbo = _losses(run, "valid", "nelbo")
    assert len(nelbo) == 4 and all(math.isfinite(v) for v in nelbo)
    assert nelbo[-1] < nelbo[0]
    assert _losses(run, "valid", "loss") == nelbo  # validation picks checkpoints by the plain bound
    for name in ("kl", "recon", "active_units", "accuracy", "kl_weight"):
        assert _losses(run, "train", name), name
    assert _losses(run, "train", "kl_weight")[0] < 1.0  # annealing in progress at the first log line


# ---- latent interpolation and reconstruction through files ---------------------------------------------


def _first_window(path: Path, window: int) -> np.ndarray:
    return GRID.encode(read_midi(path))[:window]


def _agreement(path: Path, target: np.ndarray) -> float:
    """Share of the target's tokens that the file's grid tokens repeat, step by step."""
    tokens = GRID.encode(read_midi(path))[: len(target)]
    return float((tokens == target[: len(tokens)]).sum()) / len(target)


@pytest.fixture(scope="module")
def two_piece_vae(tmp_path_factory) -> Path:
    """An lstm-vae checkpoint that has learned the first windows of two real melodies (a second of training)."""
    torch.manual_seed(0)
    config = make_config("lstm-vae", {"window": 32, "embed_dim": 16, "encoder_hidden": 32, "latent_dim": 8,
                                      "decoder_hidden": 64, "kl_warmup_steps": 10_000, "dropout": 0.0},
                         {"vocab_size": GRID.vocab_size, "pad_id": GRID.pad_id})
    model = build_model("lstm-vae", config)
    tokens = torch.stack([torch.from_numpy(np.r_[GRID.bos_id, _first_window(p, 32)]) for p in (PIECE_A, PIECE_B)])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    for _ in range(150):
        optimizer.zero_grad()
        model.loss({"tokens": tokens})["loss"].backward()
        optimizer.step()
    path = tmp_path_factory.mktemp("vae") / "two.ckpt"
    save_checkpoint({"model": {"name": "lstm-vae", "config": dataclasses.asdict(config)},
                     "representation": GRID.to_dict(), "weights": model.state_dict(), "provenance": {}}, path)
    return path


def test_interpolation_end_points_reconstruct_their_pieces_better_than_the_midpoint(two_piece_vae, tmp_path):
    files = interpolate(two_piece_vae, PIECE_A, PIECE_B, 5, tmp_path / "interp")
    assert [f.name for f in files] == [f"interp_0{i}.mid" for i in range(5)]
    written = sorted(p.name for p in (tmp_path / "interp").iterdir())
    assert written == sorted([f.name for f in files] + ["generation.json"])
    sidecar = json.loads((tmp_path / "interp" / "generation.json").read_text())
    assert sidecar["files"] == [f.name for f in files] and sidecar["options"]["steps"] == 5
    a, b = _first_window(PIECE_A, 32), _first_window(PIECE_B, 32)
    assert _agreement(files[0], a) > 0.8 and _agreement(files[-1], b) > 0.8
    assert _agreement(files[0], a) > _agreement(files[2], a)
    assert _agreement(files[-1], b) > _agreement(files[2], b)


def test_reconstruct_decodes_the_posterior_mean_of_the_first_window(two_piece_vae, tmp_path):
    out = reconstruct(two_piece_vae, PIECE_A, tmp_path / "rec" / "a.mid")
    again = interpolate(two_piece_vae, PIECE_A, PIECE_B, 2, tmp_path / "pair")[0]
    assert np.array_equal(GRID.encode(read_midi(out)), GRID.encode(read_midi(again)))  # greedy: repeatable
    assert (tmp_path / "rec" / "generation.json").is_file()


def test_latent_commands_refuse_a_family_without_a_latent_and_bad_steps(two_piece_vae, tmp_path):
    lstm = build_model("lstm", make_config("lstm", {"hidden_size": 8, "num_layers": 1, "embed_dim": 4},
                                           {"vocab_size": GRID.vocab_size}))
    path = tmp_path / "lstm.ckpt"
    save_checkpoint({"model": {"name": "lstm", "config": dataclasses.asdict(lstm.config)},
                     "representation": GRID.to_dict(), "weights": lstm.state_dict()}, path)
    with pytest.raises(UserError, match="no latent space"):
        interpolate(path, PIECE_A, PIECE_B, 4, tmp_path / "x")
    with pytest.raises(UserError, match="steps"):
        interpolate(two_piece_vae, PIECE_A, PIECE_B, 1, tmp_path / "y")
    with pytest.raises(UserError, match="does not exist"):
        reconstruct(two_piece_vae, tmp_path / "missing.mid", tmp_path / "z.mid")


# ---- layouts and lengths ----------------------------------------------------------------------------------


def test_lstm_vae_samples_pieces_longer_than_a_window_without_special_tokens():
    torch.manual_seed(0)
    cfg = make_config("lstm-vae", {"window": 12, "embed_dim": 8, "encoder_hidden": 8, "latent_dim": 4,
                                   "decoder_hidden": 16}, {"vocab_size": GRID.vocab_size, "pad_id": GRID.pad_id})
    model = build_model("lstm-vae", cfg)
    pieces = model.sample(SamplePlan(n=3, bars=3), torch.Generator().manual_seed(1))
    assert [p.shape for p in pieces] == [(48,)] * 3  # 3 bars x 16 tokens: four 12-token windows
    assert all(p.min() >= 3 for p in pieces)  # never <pad>, <bos>, <eos>
    assert GRID.decode(pieces[0]).end() <= 3 * 4 * GRID.tpq


def test_conv_vae_reads_and_writes_multitrack_rolls():
    torch.manual_seed(0)
    model = build_model("conv-vae", make_config("conv-vae", {"frame": "multitrack", "window": 16, "latent_dim": 4,
                                                             "channels": 4, "layers": 2, "hidden": 16}, {}))
    batch = model.example_batch()
    assert batch["frames"].shape == (2, 16, 5, 128)
    assert torch.isfinite(model.loss(batch)["loss"])
    (roll,) = model.sample(SamplePlan(n=1, bars=2), torch.Generator().manual_seed(0))
    assert roll.shape == (5, 32, 128) and roll.dtype == np.uint8 and set(np.unique(roll)) <= {0, 80}
    score = get_representation("multitrack").decode(roll)
    assert score.note_num() > 0 and {t.program for t in score.tracks if not t.is_drum} <= {0, 24, 32, 48}
    with pytest.raises(UserError, match="window"):
        model.loss({"frames": torch.zeros(2, 8, 5, 128), "mask": torch.ones(2, 8, dtype=torch.bool)})


@pytest.mark.parametrize("rho", [0.0, 0.9, 1.0])
def test_window_latents_stay_standard_normal_and_correlate_as_configured(rho):
    cfg = make_config("lstm-vae", {"window": 12, "embed_dim": 8, "encoder_hidden": 8, "latent_dim": 4,
                                   "decoder_hidden": 16, "window_correlation": rho},
                      {"vocab_size": GRID.vocab_size, "pad_id": GRID.pad_id})
    model, generator = build_model("lstm-vae", cfg), torch.Generator().manual_seed(0)
    chain = [model.next_window_latent(None, 20_000, generator)]
    for _ in range(5):
        chain.append(model.next_window_latent(chain[-1], 20_000, generator))
    last = chain[-1]
    assert abs(last.std().item() - 1) < 0.02 and abs(last.mean().item()) < 0.02  # still the prior
    correlation = torch.corrcoef(torch.stack([chain[-2].flatten(), last.flatten()]))[0, 1].item()
    assert abs(correlation - rho) < 0.02


def test_one_latent_per_piece_decodes_every_window_from_the_same_code():
    cfg = make_config("lstm-vae", {"window": 12, "embed_dim": 8, "encoder_hidden": 8, "latent_dim": 4,
                                   "decoder_hidden": 16, "window_correlation": 1.0},
                      {"vocab_size": GRID.vocab_size, "pad_id": GRID.pad_id})
    model = build_model("lstm-vae", cfg)
    seen = []
    decode = model.decode_latents
    model.decode_latents = lambda z, *args: seen.append(z.clone()) or decode(z, *args)
    model.sample(SamplePlan(n=2, bars=3), torch.Generator().manual_seed(1))
    assert len(seen) == 4 and all(torch.equal(z, seen[0]) for z in seen)
    with pytest.raises(UserError, match="window_correlation"):
        make_config("lstm-vae", {"window_correlation": 1.5}, {"vocab_size": GRID.vocab_size, "pad_id": 0})
