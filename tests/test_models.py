"""The shared model suite: every registered family, built from its debug config, on CPU."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tunesmith.models import MODELS, build_model, make_config
from tunesmith.training.checkpoint import load_checkpoint, save_checkpoint


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


@pytest.mark.parametrize("name", [n for n in sorted(MODELS) if hasattr(MODELS[n], "stepper")])
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
