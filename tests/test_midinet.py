"""Attention MidiNet: layers, shapes, the adversarial gradient, metrics, a debug run, generation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tunesmith.core.errors import UserError
from tunesmith.core.score import last_bars
from tunesmith.data.build import prepare_data
from tunesmith.evaluation.density import frechet_distance, pitch_class_kl
from tunesmith.evaluation.midinet_metrics import autoencoder_metric, latent_scatter_png, phrase_pitch_class_kl
from tunesmith.generation.generate import GenerateRequest, generate_scores
from tunesmith.models.bar_autoencoder import (
    BarAutoencoder,
    BarAutoencoderConfig,
    bar_functions,
)
from tunesmith.models.checkpoint import load_model
from tunesmith.models.midinet import Conditioner, Discriminator, Generator, MidiNet, MidiNetConfig
from tunesmith.models.midinet_layers import PairDown, PairUp, SelfAttention
from tunesmith.representations.bars import BarsRepresentation
from tunesmith.training.config import load_config
from tunesmith.training.loop import train

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "debug" / "midinet.yaml"
PRIMER = ROOT / "tests/fixtures/realmidi/sara_munafo_gan_nndl/Melody_from_training_set__melody_train_1.midi"
SMALL = {"noise_dim": 8, "gen_hidden": 32, "gen_channels": 8, "cond_channels": 4, "disc_first_channels": 4,
         "disc_channels": 8, "disc_hidden": 16, "seed_bank": 8}


pytestmark = pytest.mark.usefixtures("one_thread")  # small models: one thread, as training


def _model(**overrides) -> MidiNet:
    torch.manual_seed(0)
    return MidiNet(MidiNetConfig(**{**SMALL, **overrides}))


def test_pair_up_is_a_transposed_conv_with_kernel_and_stride_2():
    """Our upsampling computes ConvTranspose1d(C_in, C_out, 2, stride=2) exactly, with copied weights."""
    torch.manual_seed(0)
    conv, ours = nn.ConvTranspose1d(6, 5, kernel_size=2, stride=2), PairUp(6, 5)
    with torch.no_grad():  # conv weight (C_in, C_out, k); our Linear's row k * C_out + o is step offset k
        ours.linear.weight.copy_(conv.weight.permute(2, 1, 0).reshape(10, 6))
        ours.linear.bias.copy_(conv.bias.repeat(2))
    x = torch.randn(3, 4, 6)  # (B, T, C)
    expected = conv(x.transpose(1, 2)).transpose(1, 2)
    assert torch.allclose(ours(x), expected, atol=1e-6)


def test_pair_down_is_a_conv_with_kernel_and_stride_2():
    torch.manual_seed(0)
    conv, ours = nn.Conv1d(6, 5, kernel_size=2, stride=2), PairDown(6, 5)
    with torch.no_grad():
        ours.linear.weight.copy_(conv.weight.permute(0, 2, 1).reshape(5, 12))
        ours.linear.bias.copy_(conv.bias)
    x = torch.randn(3, 8, 6)
    assert torch.allclose(ours(x), conv(x.transpose(1, 2)).transpose(1, 2), atol=1e-6)


def test_self_attention_with_gamma_zero_is_the_identity_and_mixes_steps_otherwise():
    torch.manual_seed(0)
    layer, x = SelfAttention(16), torch.randn(2, 5, 16)
    assert float(layer.gamma) == 0.0 and torch.equal(layer(x), x)
    with torch.no_grad():
        layer.gamma.fill_(1.0)
    changed = x.clone()
    changed[:, 4] += 1.0  # a change at the last step moves the output at the first step
    assert not torch.allclose(layer(x)[:, 0], layer(changed)[:, 0])


@pytest.mark.parametrize("chords", [False, True])
def test_conditioner_generator_discriminator_shapes(chords):
    cfg = MidiNetConfig(**SMALL, chords=chords)
    prev = torch.rand(3, 16, 128)
    chord = torch.rand(3, 13) if chords else None
    maps = Conditioner(cfg)(prev)
    assert {t: tuple(m.shape) for t, m in maps.items()} == {t: (3, t, 4) for t in (16, 8, 4, 2)}
    generator = Generator(cfg)
    assert sorted(generator.attention) == ["16", "4"]  # two scales, one module each
    assert generator(torch.randn(3, 8), prev, chord).shape == (3, 16, 129)  # 128 pitches + rest
    logit, features = Discriminator(cfg)(prev, chord)
    assert logit.shape == (3,) and features.shape == (3, 8, 4)


def test_generated_bars_are_one_hot_and_attention_flag_removes_attention():
    model = _model()
    bars = model.fake_bars(torch.zeros(4, 16, 128), None)
    assert set(bars.sum(-1).unique().tolist()) <= {0.0, 1.0}  # one note or a rest per step
    plain = _model(attention=False)
    assert not any("attention" in name for name, _ in plain.named_parameters())


def test_adversarial_gradient_reaches_the_generator():
    """The generator's adversarial term alone (no matching terms) moves every generator output weight;
    the seed's detached sample gave it none."""
    model = _model(lambda_mean=0.0, lambda_feature=0.0)
    losses = model.generator_loss(model.example_batch(8))
    assert torch.equal(losses["loss"], losses["adversarial"])
    losses["loss"].backward()
    grad = model.generator.out.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    assert model.generator.fc0[0].weight.grad.abs().sum() > 0  # all the way to the noise layer


def test_pitch_class_kl_against_hand_computed_values():
    p, q = np.zeros(12), np.zeros(12)
    p[[0, 7]], q[[0, 7]] = [0.5, 0.5], [0.25, 0.75]
    assert pitch_class_kl(p, q) == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(2 / 3), abs=1e-9)
    only_c, only_g = np.eye(12)[0], np.eye(12)[7]
    # A class missing from the generated set costs p log(p / 1e-10), not infinity.
    assert pitch_class_kl(only_g, only_c) == pytest.approx(math.log(1e10), rel=1e-6)


def test_phrase_kl_halves_against_hand_computed_values():
    c, g = np.zeros((16, 128)), np.zeros((16, 128))
    c[:, 60], g[:, 67] = 1, 1
    real = np.stack([c] * 4 + [g] * 4)[None]  # one phrase: 4 bars of C, then 4 bars of G
    generated = np.stack([c] * 8)[None]
    kl = phrase_pitch_class_kl(real, generated)
    assert kl["first_half"] == pytest.approx(0.0, abs=1e-8)
    assert kl["second_half"] == pytest.approx(math.log(1e10), rel=1e-6)
    assert kl["whole"] == pytest.approx(0.5 * math.log(0.5) + 0.5 * math.log(0.5 / 1e-10), rel=1e-6)


def test_frechet_distance_against_hand_computed_values():
    # 1-D: means 1 and 3, variances (ddof 1) 2 and 8: d^2 = 2^2 + 2 + 8 - 2 sqrt(16) = 6.
    assert frechet_distance(np.array([[0.0], [2.0]]), np.array([[1.0], [5.0]])) == pytest.approx(6.0)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(a, a + [2.0, 0.0, 0.0]) == pytest.approx(4.0, abs=1e-8)  # shift only


def test_autoencoder_metric_and_pca_plot(tmp_path):
    torch.manual_seed(0)
    model = BarAutoencoder(BarAutoencoderConfig(channels=8, latent_dim=4))
    real = model.example_batch(64)["bar"]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = model.loss({"bar": real})["loss"].item()
    for _ in range(30):
        optimizer.zero_grad()
        model.loss({"bar": real})["loss"].backward()
        optimizer.step()
    assert model.loss({"bar": real})["loss"].item() < first  # it learns to reconstruct
    encode, errors = bar_functions(model)
    other = np.zeros((32, 16, 128), np.float32)
    other[:, :, 60] = 1  # one held C: far from the random training bars
    result = autoencoder_metric(real.numpy(), other, encode, errors)
    assert result["latent_real"].shape == (64, 4) and result["frechet"] > 0
    assert result["recon_mse_generated"] > 0 and np.isfinite(result["recon_mse_real"])
    png = latent_scatter_png(result["latent_real"], result["latent_generated"], tmp_path / "pca.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pieces = [_read(PRIMER), _read(PRIMER)]  # the `evaluate --embedder` seam: one mean code per piece
    assert model.embed_pieces(BarsRepresentation(), pieces).shape == (2, 4)


@pytest.fixture(scope="module")
def debug_run(tmp_path_factory) -> Path:
    config = load_config(RECIPE, ["trainer.max_epochs=2"])
    return train(config, tmp_path_factory.mktemp("midinet") / "run")


def test_bars_data_kind_pairs_each_bar_with_the_one_before():
    data = prepare_data(load_config(RECIPE).data, "bars")
    bars, _ = data.train.pieces[0]
    items = [data.train[i] for i in range(3)]
    assert items[0]["prev"].sum() == 0  # a piece's first bar follows silence
    assert torch.equal(items[1]["prev"], torch.from_numpy(bars[0].astype(np.float32)))
    assert items[1]["bar"].shape == (16, 128) and items[1]["chord"].shape == (13,)
    phrases = data.valid.phrases(4)  # the fixtures hold 7 bars (the seed wrote 96-tick 16ths)
    assert phrases["bars"].shape[1:] == (4, 16, 128) and phrases["chords"].shape[1:] == (4, 13)
    assert len(phrases["prev"]) == len(phrases["bars"])


def test_debug_training_run_writes_checkpoint_with_seed_bank(debug_run):
    loaded = load_model(debug_run / "checkpoints" / "best.ckpt")
    assert loaded.checkpoint["model"]["name"] == "midinet"
    assert int(loaded.model.bank_count) > 0  # generation can start from a real bar
    rows = (debug_run / "metrics.csv").read_text().splitlines()
    assert any(",valid,pch_kl," in row for row in rows)


@pytest.mark.parametrize("chords", [None, ["C", "G", "Am", "F"]])
def test_generation_writes_8_bars_with_at_most_one_note_per_step(debug_run, chords):
    loaded = load_model(debug_run / "checkpoints" / "best.ckpt")
    scores = generate_scores(loaded, GenerateRequest(n=3, bars=8, seed=1, chords=chords))
    bar_ticks = 4 * scores[0].ticks_per_quarter
    for score in scores:
        notes = score.tracks[0].notes.numpy()
        assert len(notes["time"]) > 0 and score.end() == 8 * bar_ticks  # exactly the bars asked
        ends = notes["time"] + notes["duration"]
        assert np.all(notes["time"][1:] >= ends[:-1])  # monophonic: no two notes overlap
        assert len(BarsRepresentation().encode(score)) <= 8


def test_generation_continues_a_primer_and_rejects_bad_chords(debug_run):
    loaded = load_model(debug_run / "checkpoints" / "best.ckpt")
    rep = BarsRepresentation()
    context = rep.encode(last_bars(_read(PRIMER), 2))
    (score,) = generate_scores(loaded, GenerateRequest(n=1, bars=8, primer=PRIMER, primer_bars=2))
    assert np.array_equal(rep.encode(score)[: len(context)], context)  # the primer's last 2 bars open it
    assert score.end() == (len(context) + 8) * 4 * score.ticks_per_quarter
    with pytest.raises(UserError, match="chord"):
        generate_scores(loaded, GenerateRequest(n=1, bars=8, chords=["C", "H7"]))


def _read(path: Path):
    from tunesmith.io.midi import read_midi

    return read_midi(path)
