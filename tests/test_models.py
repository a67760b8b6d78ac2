"""The shared model suite: every registered family, built from its debug config, on CPU."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from tunesmith.core.errors import UserError
from tunesmith.generation.generate import GenerateRequest, generate_scores
from tunesmith.models import MODELS, build_model, data_dims, make_config
from tunesmith.models.base import GENERATION_OPTIONS
from tunesmith.models.checkpoint import LoadedModel, load_checkpoint, save_checkpoint
from tunesmith.models.distributions import SamplingConfig
from tunesmith.representations import get_representation
from tunesmith.scoring.likelihood import piece_nll


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    cls = MODELS[name]
    return build_model(name, make_config(name, cls.debug_config(), cls.debug_dims()))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_loss_is_finite_and_backward_reaches_every_parameter(name):
    model = _model(name)
    losses = _losses(model, model.example_batch())
    total = sum(v for k, v in losses.items() if k.endswith("loss"))
    assert torch.isfinite(total)
    total.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient for {missing}"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_save_load_gives_identical_output(name, tmp_path):
    model = _model(name).eval()
    batch = model.example_batch()
    path = tmp_path / "m.ckpt"
    save_checkpoint({"model": {"name": name, "config": dataclasses.asdict(model.config)},
                     "weights": model.state_dict()}, path)
    payload = load_checkpoint(path)
    again = build_model(payload["model"]["name"], payload["model"]["config"]).eval()
    again.load_state_dict(payload["weights"])
    torch.manual_seed(1)
    a = _losses(model, batch)
    torch.manual_seed(1)
    b = _losses(again, batch)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", [n for n in sorted(MODELS) if MODELS[n].generation == "autoregressive"
                                  and MODELS[n].data_kind == "tokens"])
@pytest.mark.parametrize("quantize", [False, True])
def test_stepper_matches_full_forward(name, quantize):
    """Stepping with incremental state gives the logits of the full forward pass (int8: close)."""
    model = _model(name).eval()
    tokens = model.example_batch(batch_size=3, length=10)["tokens"]
    full = model(tokens).softmax(-1)
    stepper = model.stepper(quantize=quantize)
    state = stepper.initial_state(3)
    steps = []
    for t in range(tokens.shape[1]):
        logits, state = stepper(tokens[:, t], state)
        steps.append(logits.softmax(-1))
    stepped = torch.stack(steps, dim=1)
    assert stepped.shape == full.shape
    assert torch.allclose(stepped, full, atol=2e-2 if quantize else 1e-5)


def _losses(model, batch):
    if MODELS[model.name].objective == "adversarial":
        return {**model.discriminator_loss(batch), **{f"g_{k}": v for k, v in model.generator_loss(batch).items()}}
    return model.loss(batch)


# ---- the generation contract, over the whole registry -------------------------------------------------

REPRESENTATION_FOR = {"tokens": ("grid", {}), "frames": ("pianoroll", {"steps_per_quarter": 2}), "bars": ("bars", {})}


def _loaded(name: str, tmp_path) -> LoadedModel:
    """A debug model of the family with a representation of its data kind, as a checkpoint would give."""
    cls = MODELS[name]
    rep = get_representation(*REPRESENTATION_FOR[cls.data_kind][:1], **REPRESENTATION_FOR[cls.data_kind][1])
    torch.manual_seed(0)
    model = build_model(name, make_config(name, cls.debug_config(), data_dims(rep)))
    if hasattr(model, "remember"):  # one-shot bar models start from real bars they remember
        model.remember(model.example_batch())
    return LoadedModel(model.eval(), rep, {"model": {"name": name}}, tmp_path / f"{name}.ckpt")


SYMBOLIC = [n for n in sorted(MODELS) if MODELS[n].data_kind != "audio"]  # audio: tests/test_audio_vaegan*.py


@pytest.mark.parametrize("name", [n for n in SYMBOLIC if MODELS[n].generation])
def test_every_family_generates_exactly_the_bars_asked_and_repeats_under_a_seed(name, tmp_path):
    loaded = _loaded(name, tmp_path)
    request = GenerateRequest(n=3, bars=2, seed=5)
    first, again = generate_scores(loaded, request), generate_scores(loaded, request)
    assert len(first) == 3
    for score in first:
        assert score.end() == 2 * 4 * score.ticks_per_quarter  # two 4/4 bars, exactly
    assert [s.dumps_midi() for s in first] == [s.dumps_midi() for s in again]


@pytest.mark.parametrize("name", [n for n in sorted(MODELS) if MODELS[n].generation == "autoregressive"])
def test_every_autoregressive_family_gives_exactly_the_steps_asked(name, tmp_path):
    loaded = _loaded(name, tmp_path)
    (score,) = generate_scores(loaded, GenerateRequest(n=1, steps=6, seed=1))
    if loaded.model.data_kind == "frames":
        assert score.end() == 3 * score.ticks_per_quarter  # 6 frames of an eighth
    else:
        assert 0 < len(loaded.representation.encode(score)) <= 6  # grid: one token per step


@pytest.mark.parametrize("name", SYMBOLIC)
@pytest.mark.parametrize("option", sorted(GENERATION_OPTIONS))
def test_options_a_family_does_not_declare_are_refused(name, option, tmp_path):
    loaded = _loaded(name, tmp_path)
    supported = loaded.model.generation_options() if loaded.model.generation else set()
    if option in supported:
        return
    value = {"temperature": 0.5, "top_k": 3, "top_p": 0.9, "min_p": 0.1, "chords": ["C"],
             "primer": tmp_path / "p.mid", "candidates": 3}[option]
    sampling = SamplingConfig(**{k: value for k in ("temperature", "top_k", "top_p", "min_p") if k == option})
    request = GenerateRequest(n=1, bars=1, sampling=sampling, chords=value if option == "chords" else None,
                              primer=value if option == "primer" else None,
                              candidates=value if option == "candidates" else 1)
    with pytest.raises(UserError, match="does not"):
        generate_scores(loaded, request)


@pytest.mark.parametrize("name", [n for n in sorted(MODELS) if MODELS[n].likelihood])
def test_every_likelihood_family_scores_a_piece(name, tmp_path):
    loaded = _loaded(name, tmp_path)
    (score,) = generate_scores(loaded, GenerateRequest(n=1, bars=1, seed=2))
    nll = piece_nll(loaded, score)
    assert math.isfinite(nll) and nll > 0


def test_wrong_config_values_are_one_sentence_naming_the_key():
    with pytest.raises(UserError, match="hidden_size"):
        make_config("lstm", {"hidden_size": 0}, {"vocab_size": 10})
    with pytest.raises(UserError, match="cell"):
        make_config("gru", {"cell": "rnn"}, {"vocab_size": 10})
    with pytest.raises(UserError, match="dropout"):
        make_config("lstm-nade", {"dropout": "high"}, {})
    with pytest.raises(UserError, match="order"):
        make_config("lstm-nade-mix", {"order": "sideways"}, {})
    with pytest.raises(UserError, match="steps_per_bar"):
        make_config("midinet", {}, {"steps_per_bar": 12})