"""Mixed precision and torch.compile as recipe options: what the CPU allows, one sentence for what it does
not, and the fp16 GradScaler path (its state travels in checkpoints)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tunesmith.core.errors import UserError
from tunesmith.models.checkpoint import load_checkpoint
from tunesmith.resources import shipped_recipe
from tunesmith.training import distributed
from tunesmith.training.config import OptimConfig, load_config, parse_config
from tunesmith.training.engine import Engine, cpu_has_bf16, resolve_compile, resolve_precision
from tunesmith.training.loop import train
from tunesmith.training.objectives import LikelihoodObjective

CPU = torch.device("cpu")


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed, self.linear = nn.Embedding(6, 8), nn.Linear(8, 6)

    def loss(self, batch):
        logits = self.linear(self.embed(batch["tokens"][:, :-1]))
        return {"loss": nn.functional.cross_entropy(logits.flatten(0, 1).float(), batch["tokens"][:, 1:].flatten())}


def test_fp16_without_cuda_is_one_sentence():
    with pytest.raises(UserError, match="precision fp16 needs a CUDA GPU"):
        parse_config({"trainer": {"precision": "fp16", "device": "cpu"}})
    with pytest.raises(UserError, match="precision fp16 needs a CUDA GPU .* this run trains on cpu"):
        resolve_precision("fp16", CPU)
    with pytest.raises(UserError, match="trainer.compile is 'yes'"):
        parse_config({"trainer": {"compile": "yes"}})


def test_auto_is_fp32_and_no_compile_on_the_cpu():
    assert resolve_precision("auto", CPU) == "fp32"
    if cpu_has_bf16():
        assert resolve_precision("bf16", CPU) == "bf16"
    assert resolve_compile("auto", CPU) is False and resolve_compile(True, CPU) is True
    net, _ = distributed.wrap(_Tiny(), distributed.SINGLE, CPU, compile_model=True)
    assert isinstance(net, torch._dynamo.eval_frame.OptimizedModule)  # compiled lazily, at its first call


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no bf16 instructions (oneDNN's LSTM needs them)")
def test_bf16_autocast_trains_on_the_cpu(tmp_path, one_thread):
    run = train(load_config(shipped_recipe("debug/lstm"), ["trainer.precision=bf16", "trainer.max_epochs=2"]),
                tmp_path / "bf16")
    best = load_checkpoint(run / "checkpoints" / "best.ckpt")
    assert all(w.dtype == torch.float32 for w in best["weights"].values() if w.is_floating_point())
    rows = [line.split(",") for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    valid = [float(r[4]) for r in rows if r[2] == "valid" and r[3] == "loss"]
    assert len(valid) == 2 and all(math.isfinite(v) for v in valid) and valid[-1] < valid[0]


def test_fp16_grad_scaler_unscales_before_clipping_and_saves_its_state():
    """The fp16 path (CUDA in practice) run on CPU autocast: the scaler's scale grows, the update is
    the unscaled one (the same as fp32 within fp16 rounding), and its state round-trips."""
    torch.manual_seed(0)
    batch = {"tokens": torch.randint(0, 6, (4, 9))}
    grads = {}
    for precision in ("fp32", "fp16"):
        torch.manual_seed(1)
        model = _Tiny()
        objective = LikelihoodObjective(model, OptimConfig(grad_clip=0.5))
        objective.engine = Engine(model, precision, "cpu")
        objective.train_parts([(batch, 1.0)], 0)
        grads[precision] = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert torch.allclose(grads["fp16"], grads["fp32"], rtol=2e-2, atol=1e-3)
    state = objective.engine.state_dict()
    assert state["main"]["scale"] > 0 and state["main"]["_growth_tracker"] == 1
    again = Engine(_Tiny(), "fp16", "cpu")
    again.load_state_dict(state)
    assert again.state_dict() == state


@pytest.mark.skipif(cpu_has_bf16(), reason="this CPU runs bf16: nothing to refuse")
def test_bf16_on_a_cpu_without_bf16_is_one_sentence():
    with pytest.raises(UserError, match="bf16 instructions") as error:
        resolve_precision("bf16", torch.device("cpu"))
    assert "\n" not in str(error.value)
