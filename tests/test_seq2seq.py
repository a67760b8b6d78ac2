"""seq2one / seq2seq piano-roll models: losses, teacher forcing, repair, metrics, generation, a debug run."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F  # noqa: N812

from tunesmith.core.errors import UserError
from tunesmith.generation.generate import GenerateRequest, generate_scores
from tunesmith.io.midi import write_midi
from tunesmith.models import build_model, make_config
from tunesmith.models.checkpoint import LoadedModel
from tunesmith.models.distributions import SamplingConfig
from tunesmith.models.seq2seq import UNITS, focal_loss, repair, roll_metrics, sounding_to_units
from tunesmith.representations import get_representation
from tunesmith.training.config import load_config
from tunesmith.training.loop import train

ROOT = Path(__file__).resolve().parents[1]


def _model(name: str, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    config = {"hidden_size": 16, "num_layers": 1, "head_hidden": 8, "chunk": 4, "head_dropout": 0.0,
              **overrides}
    return build_model(name, make_config(name, config, {}))


def test_focal_loss_matches_its_formula():
    logits = torch.tensor([2.0, -1.0, 0.5, -3.0])
    targets = torch.tensor([1.0, 1.0, 0.0, 0.0])
    alpha, gamma = 0.7, 2.0
    expected = []
    for z, t in zip(logits.tolist(), targets.tolist(), strict=True):
        p = 1 / (1 + math.exp(-z))
        p_t = p if t == 1 else 1 - p
        alpha_t = alpha if t == 1 else 1 - alpha
        expected.append(-alpha_t * (1 - p_t) ** gamma * math.log(p_t))
    got = focal_loss(logits, targets, alpha, gamma)
    assert torch.allclose(got, torch.tensor(expected), atol=1e-6)
    # gamma 0 and alpha 0.5 is half the plain binary cross-entropy
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    assert torch.allclose(focal_loss(logits, targets, 0.5, 0.0), 0.5 * bce)


def test_loss_reductions_and_focal_option():
    model = _model("seq2one").eval()
    batch = model.example_batch(batch_size=3, length=6)
    total = model.loss(batch)
    mean = _model("seq2one", reduction="mean").eval().loss(batch)
    assert torch.allclose(mean["loss"] * UNITS, total["loss"])
    assert torch.allclose(total["loss"], total["nll"])  # BCE summed over a frame's units is the NLL
    focal = _model("seq2one", loss="focal").eval().loss(batch)
    assert focal["loss"] < focal["nll"]  # focal down-weights every unit
    with pytest.raises(UserError, match="loss must be one of"):
        _model("seq2one", loss="hinge")


def _manual_decode(model, targets, state, teacher: bool):
    """The decoder run one step at a time by hand: input 0 is a zero frame, then either the true frame
    (teacher) or the thresholded prediction."""
    frame, out = torch.zeros_like(targets[:, 0]), []
    for t in range(targets.shape[1]):
        hidden, state = model.decoder(frame.unsqueeze(1), state)
        logits = model.head(hidden[:, 0])
        out.append(logits)
        frame = targets[:, t] if teacher else (torch.sigmoid(logits) > model.config.threshold).float()
    return torch.stack(out, 1)


def test_teacher_forcing_at_ratio_one_and_zero():
    model = _model("seq2seq", threshold=0.45).eval()
    units = model.example_batch(batch_size=2)["frames"].flatten(2)
    source, targets = units[:, :4], units[:, 4:]
    state = model.encode(source)
    with torch.no_grad():
        forced = model.decode(targets, state, ratio=1.0)
        free = model.decode(targets, state, ratio=0.0)
        assert torch.allclose(forced, _manual_decode(model, targets, state, teacher=True), atol=1e-6)
        assert torch.allclose(free, _manual_decode(model, targets, state, teacher=False), atol=1e-6)
        other = torch.roll(targets, 1, dims=1)
        assert torch.equal(model.decode(other, state, ratio=0.0), free)  # free running never reads targets
        assert not torch.allclose(model.decode(other, state, ratio=1.0), forced)


def test_teacher_forcing_schedule_follows_progress():
    model = _model("seq2seq", teacher_forcing=0.5, teacher_forcing_power=2.0).train()
    for progress, ratio in [(0.0, 0.5), (0.5, 0.125), (1.0, 0.0)]:
        model.progress = progress
        assert model.teacher_forcing_ratio() == pytest.approx(ratio)
    assert model.eval().teacher_forcing_ratio() == 1.0  # validation and JSB scoring read true frames


def test_repair_fixes_both_kinds_of_broken_frames():
    roll = np.zeros((4, 3, 2), bool)
    roll[0, 0] = [True, True]  # onset and sustain: the onset stays
    roll[1, 0, 1] = True  # sustain after a sounding frame: kept
    roll[2, 1, 1] = True  # sustain from nothing: becomes an onset
    roll[3, 1, 1] = True  # ... and then sustains it
    fixed = repair(roll)
    expected = np.zeros_like(roll)
    expected[0, 0, 0] = expected[1, 0, 1] = expected[2, 1, 0] = expected[3, 1, 1] = True
    assert np.array_equal(fixed, expected)
    assert np.array_equal(repair(fixed), fixed)


def test_roll_metrics_on_a_hand_case():
    logits = torch.tensor([[[5.0, 5.0, -5.0, -5.0]]])  # predicts units 0 and 1
    targets = torch.tensor([[[1.0, 0.0, 1.0, 0.0]]])
    m = roll_metrics(logits, targets, torch.ones(1, 1), threshold=0.5)
    assert (float(m["precision"]), float(m["recall"]), float(m["density"])) == (0.5, 0.5, 0.5)
    assert float(m["f1"]) == pytest.approx(0.5)


def test_sounding_to_units_uses_the_jsb_convention():
    sounding = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]])
    units = sounding_to_units(sounding).reshape(1, 3, 2, 2)
    assert units[0, :, 0].tolist() == [[1, 0], [0, 1], [0, 0]]  # key 0: onset, then sustain
    assert units[0, :, 1].tolist() == [[0, 0], [1, 0], [0, 1]]  # key 1: onset, then sustain


@pytest.mark.parametrize("name", ["seq2one", "seq2seq"])
def test_frame_likelihood_is_causal(name):
    model = _model(name).eval()
    sounding = (torch.rand(1, 10, 88) < 0.05).float()
    changed = sounding.clone()
    changed[0, 6:] = 1 - changed[0, 6:]
    a, b = model.frame_log_likelihood(sounding), model.frame_log_likelihood(changed)
    assert torch.allclose(a[:, :6], b[:, :6])  # frames before the change: untouched
    assert not torch.allclose(a[:, 7:], b[:, 7:])  # frames after it read it
    assert (a < 0).all()


@pytest.mark.parametrize("name,init,sampling", [
    ("seq2one", "zeros", "bernoulli"), ("seq2one", "noise", "threshold"),
    ("seq2seq", "noise", "bernoulli"), ("seq2seq", "zeros", "threshold"),
])
def test_generation_from_zeros_noise_and_primer(name, init, sampling, tmp_path):
    model = _model(name, init=init, sampling=sampling, threshold=0.2)
    torch.nn.init.constant_(model.head[-1].bias, -1.0)  # sparse frames
    rep = get_representation("pianoroll", steps_per_quarter=1)
    loaded = LoadedModel(model.eval(), rep, {"model": {"name": name}}, tmp_path / "debug.ckpt")
    primer_roll = np.zeros((3, 88, 2), bool)
    primer_roll[0, 39, 0], primer_roll[1:3, 39, 1] = True, True  # C4 for three quarters
    write_midi(rep.decode(primer_roll), tmp_path / "primer.mid")
    temperature = 0.9 if sampling == "bernoulli" else None
    for prime in (None, tmp_path / "primer.mid"):
        request = GenerateRequest(n=2, steps=10, seed=3, primer=prime, sampling=SamplingConfig(temperature))
        scores = generate_scores(loaded, request)
        assert len(scores) == 2
        for score in scores:
            roll = rep.encode(score)
            assert score.end() == (10 + (3 if prime else 0)) * score.ticks_per_quarter  # exactly 10 new frames
            assert np.array_equal(repair(roll), roll)
            if prime is not None:
                assert roll[0, 39, 0] and roll[1:3, 39, 1].all()


def test_temperature_is_refused_when_units_are_thresholded(tmp_path):
    rep = get_representation("pianoroll", steps_per_quarter=1)
    loaded = LoadedModel(_model("seq2one", sampling="threshold").eval(), rep, {"model": {}}, tmp_path / "x.ckpt")
    with pytest.raises(UserError, match="--temperature"):
        generate_scores(loaded, GenerateRequest(n=1, steps=2, sampling=SamplingConfig(temperature=0.5)))


@pytest.mark.parametrize("name", ["seq2one", "seq2seq"])
def test_debug_run_logs_precision_recall_and_curves(name, tmp_path):
    config = load_config(ROOT / "configs" / "debug" / f"{name}.yaml", ["trainer.max_epochs=2"])
    run = train(config, tmp_path / "r")
    with (run / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    for split in ("train", "valid"):
        logged = {r["name"] for r in rows if r["split"] == split}
        assert {"loss", "nll", "precision", "recall", "f1", "density"} <= logged
    valid = [float(r["value"]) for r in rows if r["split"] == "valid" and r["name"] == "nll"]
    assert len(valid) == 2 and valid[1] < valid[0]
    assert (run / "learning_curves.png").stat().st_size > 1000
    assert (run / "checkpoints" / "best.ckpt").is_file()
