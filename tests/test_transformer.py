"""What is specific to the transformer family: the KV cache, relative-attention skewing, the sliding
window, optimizer groups, and a debug run trained, then sampled from the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from symusic import Score

from tunesmith.core.errors import UserError
from tunesmith.models import build_model, make_config
from tunesmith.models.transformer import TransformerLM, skewed_relative_logits
from tunesmith.training.config import OptimConfig, load_config
from tunesmith.training.loop import train
from tunesmith.training.objectives import LikelihoodObjective

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "debug" / "transformer.yaml"


def _model(position: str, n_layer: int = 2, block_size: int = 8, dropout: float = 0.0) -> TransformerLM:
    torch.manual_seed(0)
    user = {**TransformerLM.debug_config(), "position": position, "n_layer": n_layer,
            "block_size": block_size, "dropout": dropout}
    return build_model("transformer", make_config("transformer", user, {"vocab_size": 24})).eval()


@pytest.mark.parametrize("position", ["relative", "rope", "alibi"])
def test_kv_cache_steps_give_the_full_forward_logits_past_the_window(position):
    """30 tokens through a window of 8: the cache slides several times and stays exact."""
    model = _model(position)
    tokens = torch.randint(1, 24, (3, 30))
    full = model(tokens)
    stepper = model.stepper()
    state = stepper.initial_state(3)
    steps = []
    for t in range(tokens.shape[1]):
        logits, state = stepper(tokens[:, t], state)
        steps.append(logits)
        assert state.length <= 2 * model.config.block_size  # bounded: old keys are dropped
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("position", ["relative", "alibi", "rope"])
def test_full_forward_attends_to_exactly_the_last_block_size_tokens(position):
    """One layer: the logits at t past the window are those of the window alone (positions relative)."""
    model = _model(position, n_layer=1)
    tokens = torch.randint(1, 24, (2, 20))
    full = model(tokens)
    for t in (8, 13, 19):
        window = model(tokens[:, t - 7:t + 1])[:, -1]
        torch.testing.assert_close(full[:, t], window, atol=1e-5, rtol=0)
    edge, outside = tokens.clone(), tokens.clone()
    edge[:, 12], outside[:, 11] = (tokens[:, 12] % 23) + 1, (tokens[:, 11] % 23) + 1
    assert not torch.allclose(model(edge)[:, 19], full[:, 19], atol=1e-4)  # 7 back: inside the window
    torch.testing.assert_close(model(outside)[:, 19], full[:, 19], atol=1e-6, rtol=0)  # 8 back: outside


def _naive_relative(q: torch.Tensor, table: torch.Tensor, n_keys: int) -> torch.Tensor:
    """O(C N hd) reference: out[b, h, i, j] = q[b, h, i] . table[h, d], d = N - C + i - j in [0, W)."""
    b, h, c, _ = q.shape
    out = torch.zeros(b, h, c, n_keys)
    for i in range(c):
        for j in range(n_keys):
            d = n_keys - c + i - j
            if 0 <= d < table.shape[1]:
                out[:, :, i, j] = (q[:, :, i] * table[:, d]).sum(-1)
    return out


@pytest.mark.parametrize(("queries", "keys", "width"), [(7, 7, 7), (3, 10, 6), (1, 9, 9), (5, 12, 4)])
def test_skewing_equals_the_naive_relative_logits(queries, keys, width):
    torch.manual_seed(1)
    q, table = torch.randn(2, 3, queries, 5), torch.randn(3, width, 5)
    naive = _naive_relative(q, table, keys)
    skewed = skewed_relative_logits(q, table, keys)
    distance = torch.arange(keys - queries, keys)[:, None] - torch.arange(keys)[None]
    valid = (distance >= 0) & (distance < width)
    torch.testing.assert_close(skewed[..., valid], naive[..., valid], atol=1e-5, rtol=0)


def test_log_likelihood_of_a_long_piece_is_the_sliding_window_forward():
    model = _model("relative")
    piece = np.random.default_rng(0).integers(1, 24, size=29)
    log_p, units = model.log_likelihood(piece)
    seq = torch.as_tensor(piece)[None]
    with torch.no_grad():
        reference = model(seq[:, :-1]).log_softmax(-1).gather(-1, seq[:, 1:, None]).sum()
    assert units == 28 and abs(log_p - float(reference)) < 1e-4


def test_weight_decay_reaches_matrices_only_and_every_parameter_once():
    model = _model("relative")
    decay, no_decay = LikelihoodObjective(model, OptimConfig(weight_decay=0.1)).optimizers["main"].param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"]) and all(p.dim() != 2 for p in no_decay["params"])
    assert any(p.dim() == 3 for p in no_decay["params"])  # the relative-position tables are not decayed
    grouped = {id(p) for g in (decay, no_decay) for p in g["params"]}
    assert grouped == {id(p) for p in model.parameters()}
    assert len(grouped) == len(decay["params"]) + len(no_decay["params"])
    assert model.head.weight is model.embed.weight  # tied: one matrix, listed once


@pytest.mark.parametrize(("user", "key"), [({"n_embd": 10, "n_head": 4}, "n_head"),
                                           ({"position": "learned"}, "position"),
                                           ({"n_embd": 6, "n_head": 2, "position": "rope"}, "rope"),
                                           ({"dropout": 1.5}, "dropout")])
def test_bad_config_is_one_sentence_naming_the_key(user, key):
    with pytest.raises(UserError, match=key):
        make_config("transformer", user, {"vocab_size": 10})


def test_debug_recipe_learns_then_generates_exact_bars_from_the_cli(tmp_path):
    run = train(load_config(RECIPE), tmp_path / "run")
    rows = [line.split(",") for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    valid = [float(r[4]) for r in rows if r[2] == "valid" and r[3] == "loss"]
    assert len(valid) == 3 and valid[-1] < valid[0] - 0.5
    out = tmp_path / "gen"
    result = subprocess.run([sys.executable, "-m", "tunesmith.cli", "generate", str(run), "--out", str(out),
                             "--n", "2", "--bars", "2", "--seed", "3", "--min-p", "0.05"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    pieces = sorted(out.glob("*.mid"))
    assert len(pieces) == 2
    for path in pieces:
        score = Score.from_file(str(path), format="midi")
        assert score.note_num() > 0 and score.end() == 2 * 4 * score.ticks_per_quarter
