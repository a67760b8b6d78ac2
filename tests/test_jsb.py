"""The JSB Chorales benchmark: exact NLL, the LSTM-NADE family, the JSB data source and the CLI command."""

from __future__ import annotations

import itertools
import json
import math
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tunesmith.core.errors import UserError
from tunesmith.corpora.jsb import load_jsb
from tunesmith.generation.generate import GenerateRequest, generate_scores
from tunesmith.generation.sampling import sample_sequence
from tunesmith.io.midi import write_midi
from tunesmith.models import build_model, make_config
from tunesmith.models.checkpoint import load_checkpoint, load_model
from tunesmith.models.distributions import SamplingConfig
from tunesmith.models.frame_nade import random_transposition, sounding_to_pianoroll
from tunesmith.models.nade_mixture import NADEMixture
from tunesmith.scoring.jsb import benchmark_jsb, jsb_nll, load_scorable
from tunesmith.training.config import load_config
from tunesmith.training.loop import train

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "fixtures" / "jsb" / "jsb-tiny-quarter.json"


class FixedBernoulli:
    """Every key sounds with probability p, whatever came before."""

    def __init__(self, p: float) -> None:
        self.p = p

    def frame_log_likelihood(self, sounding, mask):
        on = sounding.sum(-1)
        return (on * math.log(self.p) + (88 - on) * math.log(1 - self.p)) * mask


def test_nll_matches_a_hand_computed_case():
    piece_a = np.zeros((3, 88), bool)
    piece_a[0, [39, 43, 46]] = True  # 3 keys, then 1 key, then silence
    piece_a[1, 39] = True
    piece_b = np.zeros((1, 88), bool)
    piece_b[0, [30, 40]] = True
    # per frame: -(k ln 0.1 + (88 - k) ln 0.9) with k = 3, 1, 0, 2 sounding keys; 4 frames in all
    expected = -sum(k * math.log(0.1) + (88 - k) * math.log(0.9) for k in (3, 1, 0, 2)) / 4
    result = jsb_nll(FixedBernoulli(0.1), [piece_a, piece_b], batch_size=1)
    assert result["nll"] == pytest.approx(expected, rel=1e-6)  # float32 log-probabilities
    assert (result["frames"], result["pieces"]) == (4, 2)
    assert jsb_nll(FixedBernoulli(0.1), [piece_b, piece_a], batch_size=2)["nll"] == pytest.approx(expected)


def _nade(**overrides):
    torch.manual_seed(0)
    config = {"hidden_size": 8, "num_layers": 1, "nade_hidden": 6, "dropout": 0.0, **overrides}
    return build_model("lstm-nade", make_config("lstm-nade", config, {})).eval()


@pytest.mark.parametrize("order", ["up", "down"])
def test_nade_frame_distribution_sums_to_one(order):
    model = _nade(keys=5, order=order)
    with torch.no_grad():
        torch.nn.init.normal_(model.w, std=1.0)
        torch.nn.init.normal_(model.v, std=1.0)
    history = torch.tensor([[1.0, 0, 1, 0, 0], [0, 1, 1, 0, 1]])
    frames = torch.tensor(list(itertools.product([0.0, 1.0], repeat=5)))  # all 32 frames
    pieces = torch.cat([history.expand(32, -1, -1), frames.unsqueeze(1)], 1)
    with torch.no_grad():
        log_p = model.frame_log_likelihood(pieces)[:, -1]
    assert float(log_p.exp().sum()) == pytest.approx(1.0, abs=1e-5)


def test_mixture_is_the_mean_of_its_members_probabilities_and_sums_to_one():
    torch.manual_seed(0)
    config = {"keys": 5, "hidden_size": 8, "num_layers": 1, "nade_hidden": 6, "dropout": 0.0, "members": 2}
    model = build_model("lstm-nade-mix", make_config("lstm-nade-mix", config, {})).eval()
    assert [m.config.order for m in model.members] == ["up", "down"]
    frames = torch.tensor(list(itertools.product([0.0, 1.0], repeat=5)))
    pieces = torch.cat([torch.tensor([[1.0, 0, 1, 0, 0]]).expand(32, -1, -1), frames.unsqueeze(1)], 1)
    with torch.no_grad():
        mixed = model.frame_log_likelihood(pieces)[:, -1].exp()
        members = [m.frame_log_likelihood(pieces)[:, -1].exp() for m in model.members]
    assert torch.allclose(mixed, (members[0] + members[1]) / 2, atol=1e-6)
    assert float(mixed.sum()) == pytest.approx(1.0, abs=1e-5)
    # the shared sampler draws frames with exactly these probabilities (silence, then the first frame)
    prefix = torch.tensor([[0.0] * 5, [1.0, 0, 1, 0, 0]]).expand(6000, -1, -1)
    drawn = sample_sequence(model, prefix, 1, SamplingConfig(), torch.Generator().manual_seed(0))[:, 0]
    index = (drawn * 2 ** torch.arange(4, -1, -1)).sum(-1).long()  # row of `frames` each draw equals
    empirical = torch.bincount(index, minlength=32).float() / len(index)
    assert 0.5 * float((empirical - mixed).abs().sum()) < 0.04  # total variation distance


def test_mixture_assembled_from_trained_members_scores_their_mean_probability():
    up, down = _nade(order="up"), _nade(order="down")
    mixture = NADEMixture.from_members([up, down]).eval()
    sounding = (torch.rand(2, 7, 88) < 0.05).float()
    with torch.no_grad():
        expected = torch.logsumexp(torch.stack([up.frame_log_likelihood(sounding),
                                                down.frame_log_likelihood(sounding)]), 0) - math.log(2)
        assert torch.allclose(mixture.frame_log_likelihood(sounding), expected, atol=1e-5)
    with pytest.raises(ValueError, match="same sizes"):
        NADEMixture.from_members([up, _nade(nade_hidden=5)])


def test_nade_segment_logits_equal_the_textbook_sum():
    model = _nade(nade_hidden=7)
    v = (torch.rand(50, 88) < 0.06).float()
    v[0], v[1] = 0, 1  # silence, every key
    a, b = torch.randn(50, 7), torch.randn(50, 88)
    # logit_i = b_i + V_i . sigmoid(a + sum_{j<i} v_j W_j), key by key
    keys = [b[:, i] + torch.sigmoid(a + v[:, :i] @ model.w[:i]) @ model.v[i] for i in range(88)]
    expected = torch.stack(keys, -1)
    assert torch.allclose(model.nade_logits(v, a, b), expected, atol=1e-5)


def test_nade_likelihood_is_causal():
    model = _nade()
    sounding = (torch.rand(2, 9, 88) < 0.05).float()
    changed = sounding.clone()
    changed[:, 5] = 1 - changed[:, 5]
    a, b = model.frame_log_likelihood(sounding), model.frame_log_likelihood(changed)
    assert torch.allclose(a[:, :5], b[:, :5]) and not torch.allclose(a[:, 6:], b[:, 6:])


def test_random_transposition_keeps_notes_on_the_keyboard():
    torch.manual_seed(0)
    x = torch.zeros(64, 3, 88)
    x[:, 0, 2], x[:, 1, 84] = 1, 1  # two keys from the bottom, three from the top
    shifted, shift = random_transposition(x, 6)
    assert shift.min() >= -2 and shift.max() <= 3 and len(set(shift.tolist())) == 6
    assert torch.equal(shifted.sum((1, 2)), x.sum((1, 2)))
    assert all(shifted[i, 0, 2 + s] == 1 for i, s in enumerate(shift.tolist()))


@pytest.fixture(scope="module")
def nade_run(tmp_path_factory) -> Path:
    """A debug LSTM-NADE trained through the training loop on the tiny JSB file (its own splits)."""
    config = load_config(ROOT / "configs" / "debug" / "lstm-nade.yaml")
    return train(config, tmp_path_factory.mktemp("nade") / "run")


def test_debug_run_uses_the_files_own_splits_and_learns(nade_run):
    best = load_checkpoint(nade_run / "checkpoints" / "best.ckpt")
    assert best["provenance"]["pieces"] == {"train": 6, "valid": 4, "test": 0}
    assert "own" in best["provenance"]["split_rule"]
    rows = [line.split(",") for line in (nade_run / "metrics.csv").read_text().splitlines()[1:]]
    valid = [float(r[4]) for r in rows if r[2] == "valid" and r[3] == "loss"]
    assert len(valid) == 3 and valid[-1] < valid[0]


def test_benchmark_command_on_the_tiny_file(nade_run, tmp_path):
    checkpoint = nade_run / "checkpoints" / "best.ckpt"
    out = tmp_path / "nll.json"
    cli = [sys.executable, "-m", "tunesmith.cli", "benchmark", "jsb", str(checkpoint), "--data", str(TINY)]
    done = subprocess.run([*cli, "--split", "valid", "--out", str(out)], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    model, _ = load_scorable(checkpoint)
    expected = jsb_nll(model, load_jsb(TINY)["valid"])
    assert result["model"] == "lstm-nade" and result["split"] == "valid" and result["pieces"] == 4
    assert result["nll_nats_per_frame"] == pytest.approx(expected["nll"], abs=1e-5)
    assert f"{result['nll_nats_per_frame']:.4f}" in done.stdout
    with pytest.raises(UserError, match="no 'test' split"):  # the CLI prints it as one line, exit 2
        benchmark_jsb(checkpoint, TINY, "test", tmp_path / "t.json")


@pytest.mark.parametrize("suffix", [".json", ".pickle"])
def test_benchmark_scores_the_test_split_of_a_full_file(nade_run, tmp_path, suffix):
    """Users download the canonical files with train / valid / test (JSON, or the original pickle)."""
    raw = json.loads(TINY.read_text())
    test = [[tuple(step) for step in piece] for piece in raw["valid"][2:]]  # the pickle holds tuples
    full = {"train": raw["train"], "valid": raw["valid"][:2], "test": test}
    path = tmp_path / f"jsb-full-quarter{suffix}"
    path.write_bytes(pickle.dumps(full, protocol=2) if suffix == ".pickle" else json.dumps(full).encode())
    result = benchmark_jsb(nade_run / "checkpoints" / "best.ckpt", path, "test", tmp_path / "r.json")
    model, _ = load_scorable(nade_run / "checkpoints" / "best.ckpt")
    expected = jsb_nll(model, load_jsb(TINY)["valid"][2:])
    assert result["pieces"] == 2 and result["nll_nats_per_frame"] == pytest.approx(expected["nll"], abs=1e-5)


def test_generation_continues_a_primer_for_exactly_the_bars_asked(nade_run, tmp_path):
    loaded = load_model(nade_run / "checkpoints" / "best.ckpt")
    rep = loaded.representation
    primer_sounding = load_jsb(TINY)["valid"][0][:8]  # two 4/4 bars of quarter frames
    write_midi(rep.decode(sounding_to_pianoroll(primer_sounding)), tmp_path / "primer.mid")
    request = GenerateRequest(n=2, bars=3, seed=0, primer=tmp_path / "primer.mid",
                              sampling=SamplingConfig(temperature=0.8))
    scores = generate_scores(loaded, request)
    assert len(scores) == 2
    for score in scores:
        roll = rep.encode(score).any(-1)
        assert np.array_equal(roll[:8], primer_sounding)
        assert score.end() == (8 + 12) * score.ticks_per_quarter  # the primer's 2 bars, then 3 new


def test_shipped_jsb_best_is_strong_on_the_fixture_pieces(tmp_path):
    """The 4 fixture valid chorales are real JSB valid pieces: the shipped model must score them well
    (published test figures: LSTM 8.5, RNN-NADE 5.6 nats per frame)."""
    if not (ROOT / "checkpoints" / "jsb-best.ckpt").is_file():
        pytest.skip("checkpoints/jsb-best.ckpt is not in this checkout")
    result = benchmark_jsb("jsb-best", TINY, "valid", tmp_path / "best.json")
    assert result["model"] == "lstm-nade-mix" and result["nll_nats_per_frame"] < 5.5
