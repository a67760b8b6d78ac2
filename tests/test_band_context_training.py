"""Band models with context (and a piano gate) train in the one training loop: window pairs on each piece's grid
carry the piece so far (data/piece_history.py), asked for by `BandModel.piece_history`.

Data: the MIT-licensed multitrack fixtures (tests/fixtures/realmidi/miditok_tests, see LICENCE-NOTE.md)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from conftest import REALMIDI
from tunesmith.core.errors import UserError
from tunesmith.data.build import prepare_data
from tunesmith.data.config import DataConfig
from tunesmith.data.piece_history import HistoryPairs
from tunesmith.generation.band import band_representation
from tunesmith.io.midi import read_midi
from tunesmith.models import build_model, make_config
from tunesmith.models.band import GATE_LR, BandModel
from tunesmith.models.band_latents import encode_pieces
from tunesmith.models.band_rolls import window_sounding
from tunesmith.models.base import SamplePlan
from tunesmith.models.checkpoint import load_checkpoint, load_model
from tunesmith.models.latent_predictor import context_features
from tunesmith.resources import shipped_recipe
from tunesmith.training.config import load_config
from tunesmith.training.loop import train

MULTITRACK = REALMIDI / "miditok_tests" / "MIDIs_multitrack"
CONTEXT = [f"data.source={MULTITRACK}", "model.config.context=2", "model.config.gate=true", "model.config.ae_steps=0"]
pytestmark = pytest.mark.usefixtures("one_thread")


def _history_data(context: int = 2, window: int = 16):
    """The debug band's data (16-step windows) prepared with the piece so far, and the model's config."""
    config = make_config("band", {**BandModel.debug_config(), "window": window, "context": context}, {})
    data = DataConfig(source=str(MULTITRACK), representation="multitrack", window=2 * window, stride=window,
                      valid_fraction=0.25)
    return prepare_data(data, "frames", None, BandModel.piece_history(config)), config


def test_each_pair_lies_on_its_pieces_window_grid_and_carries_the_summary_of_the_piece_up_to_its_first_window():
    prepared, config = _history_data()
    train = prepared.train
    assert isinstance(train, HistoryPairs) and len(train) > 100
    w, seen = config.window, set()
    for item in range(0, len(train), 7):
        piece, t = train.index[item]
        roll = np.moveaxis(train.pieces[piece], 0, 1)  # (5, T, 128), as the representation encodes it
        n = roll.shape[1] // w
        sounded = window_sounding(roll[:, : n * w], w)  # the generation side's rule, windows on the grid
        pair = train[item]
        assert torch.equal(pair["frames"], torch.from_numpy(roll[:, t * w : (t + 2) * w]).permute(1, 0, 2).float())
        assert pair["mask"].all() and pair["frames"].any()
        assert torch.equal(pair["history"], context_features(sounded[None, : t + 1], config.context)[0])
        seen.add(t)
    assert max(seen) > config.context + 1  # items deep into pieces, where "sounded before" is filled in
    pairs = [train[i] for i in range(len(train))]
    before = torch.stack([p["history"][15:20] for p in pairs])  # "sounded before t-2", per group
    assert before.any() and not before.all()


def test_the_pairs_sounded_flags_are_those_of_the_latent_pieces():
    prepared, config = _history_data(window=32)
    model = build_model("band", config)
    rolls = [band_representation(model).encode(read_midi(path)) for path in sorted(MULTITRACK.glob("*.mid"))[:3]]
    pairs = HistoryPairs(rolls, BandModel.piece_history(config), time_axis=1)
    for sounded, piece in zip(pairs.sounded, encode_pieces(model, rolls), strict=True):
        assert torch.equal(sounded, piece.sounded)


def test_a_band_with_context_and_gate_trains_in_the_loop_and_logs_the_gates_bce(tmp_path):
    config = load_config(shipped_recipe("debug/band"), [*CONTEXT, "trainer.max_steps=6", "trainer.checkpoint_every=3"])
    run = train(config, tmp_path / "run")
    model = load_model(run / "checkpoints" / "last.ckpt").model
    assert model.config.context == 2 and model.config.gate
    fresh = build_model("band", make_config("band", {**model.config.__dict__}, {}))
    assert not torch.equal(model.predictors.gate.linear.weight, fresh.predictors.gate.linear.weight)
    with open(run / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "valid"]
    names = {r["name"] for r in rows}
    assert {"gate_bce", "pred_nll", "pred_mse/piano", "target_var/piano"} <= names
    assert 0 < float(next(r["value"] for r in rows if r["name"] == "gate_bce")) < 2
    groups = load_checkpoint(run / "checkpoints" / "last.ckpt")["optimizer"]["main"]["param_groups"]
    gate = list(model.predictors.gate.parameters())  # 3 matrices, 3 biases: groups of their own (decayed or not)
    assert len(groups) == 4 and [len(g["params"]) for g in groups[2:]] == [3, 3] and len(gate) == 6
    assert groups[-1]["lr"] == pytest.approx(GATE_LR * groups[0]["lr"])  # 10 x the rate, schedule and all


def test_a_resumed_context_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    whole = train(load_config(shipped_recipe("debug/band"), [*CONTEXT, "trainer.max_steps=4"]), tmp_path / "whole")
    part = [*CONTEXT, "trainer.max_steps=2", "trainer.checkpoint_every=2"]
    train(load_config(shipped_recipe("debug/band"), part), tmp_path / "part")
    resumed = train(load_config(tmp_path / "part" / "config.yaml", ["trainer.max_steps=4"]), tmp_path / "part",
                    resume=True)
    a, b = (load_model(run / "checkpoints" / "last.ckpt").model for run in (whole, resumed))
    for name, weight in a.state_dict().items():
        assert torch.equal(weight, b.state_dict()[name]), name


@pytest.mark.parametrize(("override", "message"), [
    ("data.streaming=true", "data.streaming"),
    ("data.window=48", "set it to 32"),
    ("data.stride=8", "data.stride is 8"),
])
def test_a_context_band_refuses_data_that_cannot_carry_the_piece_so_far(tmp_path, monkeypatch, override, message):
    def no_loading(*args, **kwargs):
        raise AssertionError("the data were loaded before the refusal")

    monkeypatch.setattr("tunesmith.data.build.load_scores", no_loading)
    with pytest.raises(UserError, match=message):
        train(load_config(shipped_recipe("debug/band"), [*CONTEXT, override]), tmp_path / "run")


def test_a_context_band_refuses_a_batch_without_the_piece_so_far_and_scores_one_with_it():
    model = build_model("band", make_config("band", {**BandModel.debug_config(), "context": 2, "gate": True}, {}))
    batch = model.example_batch(4)
    with pytest.raises(UserError, match="tunesmith train"):
        model.loss(batch)
    batch["history"] = context_features(torch.rand(4, 3, 5) < 0.5, 2)
    model.eval()
    logs = model.loss(batch)
    assert torch.isfinite(logs["loss"]) and float(logs["gate_bce"]) > 0


def test_start_patterns_a_strings_gate_and_the_groove_train_in_the_loop_and_resume_exactly(tmp_path):
    extra = [*CONTEXT, "model.config.group_gates=[strings]", "model.config.start_pattern=true",
             "model.config.groove=true", "model.config.kit=true"]
    whole = train(load_config(shipped_recipe("debug/band"), [*extra, "trainer.max_steps=4"]), tmp_path / "whole")
    train(load_config(shipped_recipe("debug/band"), [*extra, "trainer.max_steps=2", "trainer.checkpoint_every=2"]),
          tmp_path / "part")
    resumed = train(load_config(tmp_path / "part" / "config.yaml", ["trainer.max_steps=4"]), tmp_path / "part",
                    resume=True)
    a, b = (load_model(run / "checkpoints" / "last.ckpt").model for run in (whole, resumed))
    for name, weight in a.state_dict().items():
        assert torch.equal(weight, b.state_dict()[name]), name
    assert a.config.group_gates == ["strings"] and int(a.start.patterns.sum()) > 0 and int(a.notes.groove.sum()) > 0
    with open(whole / "metrics.csv") as f:
        assert "group_gate_bce" in {r["name"] for r in csv.DictReader(f) if r["split"] == "valid"}
    rolls = a.sample(SamplePlan(2, 4), torch.Generator().manual_seed(0))
    assert len(rolls) == 2 and rolls[0].shape == (5, 64, 128)
