"""band-5, sessions 6-9: latent predictors that read the piece so far (`context`), their latent data, and the
shipped band-5 (context 3 and a piano gate since session 9) following its primer's parts.

Data: the MIT-licensed multitrack fixtures (tests/fixtures/realmidi/miditok_tests, see LICENCE-NOTE.md)."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
import torch

from conftest import REALMIDI
from tunesmith.core.errors import UserError
from tunesmith.generation.band import band_representation
from tunesmith.io.midi import read_midi
from tunesmith.models import build_model, make_config
from tunesmith.models.band import BandModel
from tunesmith.models.band_latents import context_pairs, encode_pieces
from tunesmith.models.band_rolls import window_sounding
from tunesmith.models.base import SamplePlan
from tunesmith.models.checkpoint import FORMAT, load_model, save_checkpoint
from tunesmith.models.latent_predictor import LatentPredictors, PianoGate, context_features, context_size
from tunesmith.training.init_from import initialise_from

MULTITRACK = REALMIDI / "miditok_tests" / "MIDIs_multitrack"
PIANO = 0
pytestmark = pytest.mark.usefixtures("one_thread")


def _primer() -> np.ndarray:
    """Two windows of a bass line and a drum groove, no piano: (5, 64, 128)."""
    roll = np.zeros((5, 64, 128), np.uint8)
    roll[2, :, 40] = 90
    roll[4, ::4, 36] = 100
    return roll


def _real_primer(model, song: str) -> np.ndarray:
    """The first 4 bars (64 steps) of an MIT fixture song as the model's (5, 64, 128) multitrack roll."""
    return band_representation(model).encode(read_midi(MULTITRACK / song))[:, :64]


@pytest.mark.parametrize("song, piano", [("Girls Just Want to Have Fun.mid", True), ("What a Fool Believes.mid", True),
                                         ("Funkytown.mid", False), ("In Too Deep.mid", False)])
def test_the_shipped_band_5_keeps_the_piano_of_its_primer_and_leaves_it_out_after_one_without(song, piano):
    # real 4-bar primers (MIT fixtures), 4 continuations of 8 bars each; measured: piano in 100 % of the new bars
    # after both piano primers, 12.5 % after both piano-less ones (the one-window band-5: piano came and went)
    model = load_model("band-5").model
    assert model.config.context == 3 and model.config.gate and model.config.kit
    primer = _real_primer(model, song)
    assert primer[PIANO].any() == piano
    rolls = np.stack(model.sample(SamplePlan(4, 8, primer), torch.Generator().manual_seed(0)))
    bars = rolls[:, :, 64:].reshape(4, 5, 8, 16, 128).any((3, 4))  # (pieces, groups, new bars)
    share = bars[:, PIANO].mean()
    assert share >= 0.9 if piano else share <= 0.3
    assert bars[:, 4].mean() >= 0.9  # the drums of every primer go on


def test_continuations_and_pieces_from_nothing_have_their_own_gate_odds():
    # odds 0: the gate's coin always says "rests", so piano is silent after the first window (the start draw)
    model = load_model("band-5").model
    assert model.config.gate_odds == 20 and model.config.prior_gate_odds == 12
    primer = _real_primer(model, "Girls Just Want to Have Fun.mid")
    model.config.prior_gate_odds = 0.0
    prior = np.stack(model.sample(SamplePlan(4, 8), torch.Generator().manual_seed(0)))
    assert not prior[:, PIANO, 32:].any()
    kept = np.stack(model.sample(SamplePlan(2, 4, primer), torch.Generator().manual_seed(0)))
    assert kept[:, PIANO, 64:].any()  # continuations still use gate_odds
    model.config.gate_odds = 0.0
    dropped = np.stack(model.sample(SamplePlan(2, 4, primer), torch.Generator().manual_seed(0)))
    assert not dropped[:, PIANO, 64:].any()


def test_the_summary_holds_the_last_windows_what_came_before_and_how_far_the_piece_has_gone():
    sounded = torch.zeros(1, 6, 5, dtype=torch.bool)
    sounded[0, 0, PIANO] = True  # piano in the first window only, then silent for five
    sounded[0, :, 4] = True  # drums throughout
    features = context_features(sounded, 2)  # t = 5: windows 5, 4, 3, then "before 3"
    assert features.shape == (1, context_size(2)) == (1, 5 * 4 + 1)
    recent, before = features[0, :15].reshape(5, 3), features[0, 15:20]  # newest first; "before t-K"
    assert recent[PIANO].tolist() == [0, 0, 0] and before[PIANO] == 1  # silent in t, t-1, t-2; played before
    assert recent[4].tolist() == [1, 1, 1] and before[4] == 1 and recent[2].sum() == before[2] == 0
    assert features[0, -1] == 1.0  # a full history
    early = context_features(sounded[:, :2], 2)[0]  # t = 1: window 0 is t-1, nothing before the piece
    assert early[:15].reshape(5, 3)[PIANO].tolist() == [0, 1, 0] and early[15 + PIANO] == 0
    assert early[-1] == pytest.approx(1 / 3)


def test_init_from_grows_a_one_window_band_into_context_predictors_that_start_as_it(tmp_path):
    torch.manual_seed(0)
    old = build_model("band", make_config("band", BandModel.debug_config(), {})).eval()
    save_checkpoint({"format": FORMAT, "model": {"name": "band", "config": asdict(old.config)},
                     "weights": old.state_dict()}, tmp_path / "old.ckpt")
    new = build_model("band", make_config("band", {**BandModel.debug_config(), "context": 2}, {}))
    counts = initialise_from(new, "band", None, str(tmp_path / "old.ckpt"))
    assert counts["fresh"] == 0 and counts["grown"] == 2 * 5  # each predictor's first deep and linear layers
    new.eval()
    z_t, z_next = torch.randn(8, 5, 4), torch.randn(8, 5, 4)
    history = context_features(torch.rand(8, 4, 5) < 0.5, 2)
    expected = old.predictors.expected_next(z_t, z_next)
    assert torch.allclose(expected, new.predictors.expected_next(z_t, z_next, history=history), atol=1e-6)
    with pytest.raises(ValueError, match="context 2"):
        new.predictors.expected_next(z_t, z_next)
    assert new.grown_weight("codec.encoder.0.weight", torch.zeros(2, 2), (2, 3)) is None


def test_context_predictors_learn_a_return_the_last_window_does_not_show():
    torch.manual_seed(0)
    predictors = LatentPredictors(4, 32, 1, 0.0, context=2)
    optimizer = torch.optim.Adam(predictors.parameters(), lr=0.01)
    sounded = torch.rand(256, 3, 5) < 0.5
    sounded[:, -1, PIANO] = False  # piano silent now in every item ...
    z_t, z_next = torch.randn(256, 5, 4), torch.randn(256, 5, 4)
    z_next[:, PIANO] = torch.where(sounded[:, 1, PIANO, None], 2.0, -2.0)  # ... and back where it played before
    history, valid = context_features(sounded, 2), torch.ones(256, dtype=torch.bool)
    for _ in range(150):
        loss, logs = predictors.loss(z_t, z_next, valid, 0.0, True, history=history)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    predictors.eval()
    assert float(logs["pred_mse/piano"]) < 0.1 * float(logs["target_var/piano"])
    mean = predictors.expected_next(z_t, z_next, history=history)[:, PIANO].mean(-1)
    assert ((mean > 0) == sounded[:, 1, PIANO]).float().mean() > 0.95


def test_latent_pieces_are_whole_windows_of_real_songs_with_what_each_group_sounds():
    model = build_model("band", make_config("band", {**BandModel.debug_config(), "window": 32}, {}))
    rep = band_representation(model)
    rolls = [rep.encode(read_midi(path)) for path in sorted(MULTITRACK.glob("*.mid"))[:3]]
    pieces = encode_pieces(model, rolls)
    for roll, piece in zip([r for r in rolls if r.shape[1] >= 32], pieces, strict=True):
        n = roll.shape[1] // 32
        assert piece.latents.shape == (n, 5, 4)
        expected = roll[:, : n * 32].reshape(5, n, -1).any(-1).T
        assert torch.equal(piece.sounded, torch.from_numpy(expected))
        assert torch.equal(window_sounding(roll[:, : n * 32], 32), piece.sounded)
    pairs = context_pairs(pieces, 2)
    assert len(pairs["z_t"]) == sum(len(p.latents) - 1 for p in pieces) == len(pairs["history"])
    assert torch.equal(pairs["plays"][0], pieces[0].sounded[1])


def test_a_context_band_continues_a_primer_and_refuses_batches_without_the_piece_so_far():
    config = {**BandModel.debug_config(), "context": 2}
    model = build_model("band", make_config("band", config, {}))
    rolls = model.sample(SamplePlan(2, 4, _primer()[:, :16]), torch.Generator().manual_seed(0))
    assert [r.shape for r in rolls] == [(5, 16 + 64, 128)] * 2
    assert all(np.array_equal(r[:, :16], _primer()[:, :16]) for r in rolls)
    with pytest.raises(UserError, match="tunesmith train"):  # the loop's pairs carry it (test_band_context_training)
        model.loss(model.example_batch())


def test_piano_temperature_scales_only_the_piano_draw():
    torch.manual_seed(0)
    predictors = LatentPredictors(4, 16, 1, 0.0).eval()
    band = torch.randn(3, 5, 4)
    mean = predictors.piano_next(band)[0]
    still = predictors.step(band, 1.0, torch.Generator().manual_seed(0), piano_factor=0.0)[0]
    assert torch.allclose(still[:, PIANO], mean)  # piano at its mean, the others drawn
    default = predictors.step(band, 1.0, torch.Generator().manual_seed(0))[0]
    same = predictors.step(band, 1.0, torch.Generator().manual_seed(0), piano_factor=1.0)[0]
    wide = predictors.step(band, 1.0, torch.Generator().manual_seed(0), piano_factor=2.0)[0]
    assert torch.equal(default, same)
    assert torch.allclose(wide[:, PIANO] - mean, 2 * (default[:, PIANO] - mean), atol=1e-5)
    with pytest.raises(UserError, match="piano_temperature"):
        make_config("band", {**BandModel.debug_config(), "piano_temperature": -1.0}, {})


def test_a_piano_gate_decides_whether_piano_plays_and_needs_context():
    config = {**BandModel.debug_config(), "context": 2, "gate": True}
    model = build_model("band", make_config("band", {**config, "gate_odds": 0.0}, {}))
    rolls = model.sample(SamplePlan(3, 8, _primer()[:, :16]), torch.Generator().manual_seed(0))
    assert all(not r[PIANO, 16:].any() for r in rolls) and any(r[1:, 16:].any() for r in rolls)
    predictors, silent = model.predictors.eval(), torch.full((4,), 7.0)
    history, band = context_features(torch.rand(64, 3, 5) < 0.5, 2), torch.randn(64, 5, 4)
    for weight in predictors.piano.parameters():  # piano's predictor: mean 0, std 1 whatever it reads
        torch.nn.init.zeros_(weight)
    sure = PianoGate(1e9, 16, lambda z: z[:, 0] > 0)  # the coin says "plays"; "sounds" = first coordinate > 0
    z, coin = predictors._gated_piano(band, 1.0, torch.Generator().manual_seed(0), history, sure, silent)
    assert bool(coin.all()) and bool((z[:, 0] > 0).all())  # a sounding draw kept (all 16 fail: 2^-16 an item)
    never = PianoGate(0.0, 8, sure.sounds)
    z, coin = predictors._gated_piano(band, 1.0, torch.Generator().manual_seed(0), history, never, silent)
    assert not bool(coin.any()) and bool((z == 7.0).all())
    history = context_features(torch.rand(64, 3, 5) < 0.5, 2)
    plays = history[:, : 5 * 3 : 3] > 0  # "piano plays next" = "piano plays now" in this toy
    optimizer = torch.optim.Adam(model.predictors.gate.parameters(), lr=0.05)
    for _ in range(100):
        loss = model.predictors.gate_loss(history, plays, torch.ones(64, dtype=torch.bool))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < 0.1
    with pytest.raises(UserError, match="gate"):
        make_config("band", {**BandModel.debug_config(), "gate": True}, {})
