"""band-5, session 5: presence coins per instrument, voicing and harmony in decoding, the training-start hook.

Data: the MIT-licensed multitrack fixtures (tests/fixtures/realmidi/miditok_tests, see LICENCE-NOTE.md)."""

from __future__ import annotations

import pytest
import torch

from conftest import REALMIDI
from tunesmith.generation.band import band_representation
from tunesmith.io.midi import read_midi
from tunesmith.models import build_model, make_config
from tunesmith.models.band import BandModel
from tunesmith.models.band_decoding import DecodingStats, expected_units, harmonised, voiced_units
from tunesmith.models.base import SamplePlan
from tunesmith.models.latent_predictor import LatentPredictors
from tunesmith.models.window_ae import roll_planes
from tunesmith.resources import shipped_recipe
from tunesmith.training.config import load_config
from tunesmith.training.loop import train

MULTITRACK = REALMIDI / "miditok_tests" / "MIDIs_multitrack"
BASS, DRUMS = 2, 4
pytestmark = pytest.mark.usefixtures("one_thread")


def test_voicing_keeps_one_register_and_the_voices_a_group_has():
    sound = torch.zeros(1, 5, 8, 128)
    sound[0, BASS, :, 36] = 0.6  # a bass line at C2 ...
    sound[0, BASS, :, 38] = 0.5  # ... with a second voice a tone above
    sound[0, BASS, 3, 84] = 0.9  # and one sure stray note four octaves up
    sound[0, DRUMS, :, 42] = 0.4
    span, voices = torch.tensor([12.0, 12, 12, 12, 128]), torch.tensor([2.0, 2, 1, 2, 128])
    allowed = voiced_units(sound, 8, span, voices)
    assert allowed[0, BASS, :, 36].all() and not allowed[0, BASS, :, 84].any()  # the register with most mass
    assert not allowed[0, BASS, :, 38].any()  # one voice: the more probable pitch at each step
    assert allowed[0, BASS].sum(-1).max() == 1 and allowed[0, DRUMS].all()
    probs = torch.stack([sound, sound], 2)  # onset and sustain planes alike
    chosen = expected_units(probs, 8, torch.ones(5, 2), allowed[:, :, None])
    # 10 units' worth of probability, 8 allowed units: every allowed one, nothing outside the band
    assert round(float(probs[0, BASS, 1].sum())) == 10 and torch.equal(chosen[0, BASS, 1], allowed[0, BASS])
    fewer = expected_units(probs * 0.5, 8, torch.ones(5, 2), allowed[:, :, None])
    assert fewer[0, BASS, 1].sum() == round(float(0.5 * probs[0, BASS, 1].sum()))  # the count where it fits
    assert not fewer[0, BASS, 1, :, 84].any() and not fewer[0, BASS, 1, :, 38].any()


def test_harmony_ranks_each_part_by_the_pitch_classes_the_band_agrees_on():
    probs = torch.zeros(1, 5, 2, 16, 128)
    probs[0, 0, 1, :, 60] = 0.5  # piano: C ...
    probs[0, 0, 1, :, 61] = 0.55  # ... or C#, slightly surer
    probs[0, 1, 1, :, 64] = 0.9  # guitar E, strings C, bass C: the band says C
    probs[0, 3, 1, :, 72] = 0.9
    probs[0, BASS, 1, :, 36] = 0.9
    rank = harmonised(probs, 16, 2.0)
    assert (rank[0, 0, 1, :, 60] > rank[0, 0, 1, :, 61]).all()  # piano now prefers the band's C
    assert torch.equal(rank[0, DRUMS], probs[0, DRUMS]) and torch.equal(harmonised(probs, 16, 0.0), probs)


def test_voicing_tables_are_measured_on_real_windows():
    rep = band_representation(build_model("band", make_config("band", {}, {})))
    roll = rep.encode(read_midi(MULTITRACK / "Girls Just Want to Have Fun.mid"))[:, :256]  # all five play
    frames = torch.from_numpy(roll.astype("float32")).permute(1, 0, 2).reshape(8, 32, 5, 128)
    planes = roll_planes(frames)  # eight 2-bar windows
    stats = DecodingStats(32, voicing=True)
    stats.update_voicing(planes, torch.ones(8, 32, dtype=torch.bool))
    sounding = planes[:, :, 1]
    for g in range(4):
        plays = sounding[:, g].flatten(1).any(-1)
        if plays.any():
            pitches = [torch.nonzero(w.any(0)).flatten() for w in sounding[plays, g]]
            spans = torch.tensor([float(p[-1] - p[0] + 1) for p in pitches])
            assert stats.span[g] == spans.median()  # the first batch sets the table
    assert stats.span[BASS] < 128 and 1 <= stats.voices[BASS] <= 2 and stats.span[DRUMS] == 128


def _predictors(piano_bias: float) -> LatentPredictors:
    torch.manual_seed(0)
    predictors = LatentPredictors(4, 8, 1, 0.0, presence=True).eval()
    with torch.no_grad():
        for head in predictors.presence:
            head.deep[-1].bias.fill_(20.0)
            head.linear.weight.zero_()
        predictors.presence[0].deep[-1].bias.fill_(piano_bias)  # piano's head comes first
    return predictors


def test_a_group_whose_presence_coin_is_silent_gets_the_silent_latent():
    band, silent = torch.randn(3, 5, 4), torch.randn(5, 4)
    z, plays = _predictors(-20.0).step(band, 1.0, torch.Generator().manual_seed(0), silent)
    assert plays[:, 1:].all() and not plays[:, 0].any()
    assert torch.equal(z[:, 0], silent[0].expand(3, -1)) and not torch.equal(z[:, 1], silent[1].expand(3, -1))
    z, plays = _predictors(20.0).step(band, 1.0, torch.Generator().manual_seed(0), silent)
    assert plays.all() and not torch.equal(z[:, 0], silent[0].expand(3, -1))


def test_presence_heads_learn_that_a_group_playing_now_plays_next():
    torch.manual_seed(0)
    predictors = LatentPredictors(4, 16, 1, 0.0, presence=True)
    optimizer = torch.optim.Adam(predictors.parameters(), lr=0.01)
    z_t, z_next = torch.randn(64, 5, 4), torch.randn(64, 5, 4)
    now = torch.rand(64, 5) < 0.5
    plays = now  # who plays next is who plays now, which the latents do not show: only `carry` does
    first = None
    for _ in range(60):
        loss, logs = predictors.loss(z_t, z_next, torch.ones(64, dtype=torch.bool), 0.0, True, plays, now)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = float(logs["pres_bce"]) if first is None else first
    assert float(logs["pres_bce"]) < 0.5 * first
    guess = torch.sigmoid(predictors.presence_logits(predictors.carry(z_t, now), z_next)) > 0.5
    assert (guess == plays).float().mean() > 0.95
    assert predictors.expected_next(z_t, z_next, now).shape == (64, 5, 4)
    silent = torch.zeros(5, 4)
    _, drawn = predictors.step(z_t[:8], 1.0, torch.Generator().manual_seed(0), silent, "threshold", now[:8])
    assert torch.equal(drawn[:, 0], now[:8, 0])  # at p > 1/2 piano (read from the band alone) keeps its state


def test_a_band_with_presence_and_voicing_writes_whole_pieces():
    config = {**BandModel.debug_config(), "presence": True, "voicing": True, "harmony": 2.0, "window": 16}
    model = build_model("band", make_config("band", config, {}))
    rolls = model.sample(SamplePlan(2, 4), torch.Generator().manual_seed(0))
    assert [r.shape for r in rolls] == [(5, 64, 128)] * 2
    with pytest.raises(Exception, match="harmony"):
        make_config("band", {"harmony": -1.0}, {})


def test_the_training_start_hook_runs_once_for_a_new_run_and_not_on_resume(tmp_path, monkeypatch):
    calls = []
    real = BandModel.start_training
    monkeypatch.setattr(BandModel, "start_training", lambda self: (calls.append(1), real(self)))
    overrides = [f"data.source={MULTITRACK}", "trainer.max_steps=2", "trainer.checkpoint_every=1"]
    run = train(load_config(shipped_recipe("debug/band"), overrides), tmp_path / "run")
    assert calls == [1]
    more = [f"data.source={MULTITRACK}", "trainer.max_steps=3", "trainer.checkpoint_every=1"]
    train(load_config(shipped_recipe("debug/band"), more), run, resume=True)
    assert calls == [1]  # the resumed run has what the hook prepared in its checkpoint


def test_with_voicing_the_expected_rule_counts_each_bar_so_no_bar_is_left_empty():
    probs = torch.full((1, 5, 2, 32, 128), 1e-6)
    probs[0, 0, :, 0:2, 60] = 0.9  # bar 1: sure, 1.8 units' worth
    probs[0, 0, :, 16:18, 62] = 0.3  # bar 2: unsure, 0.6 units' worth
    logits = torch.logit(probs)
    per_window = DecodingStats(32, voicing=False, bar=16).decode(logits, "expected", None)[1]
    per_bar = DecodingStats(32, voicing=True, bar=16).decode(logits, "expected", None)[1]
    assert per_window[0, 0, 16:].sum() == 0 and per_window[0, 0, :16].sum() == 2  # 2.4 -> 2 units, both in bar 1
    assert per_bar[0, 0, :16].sum() == 2 and per_bar[0, 0, 16:].sum() == 1  # 1.8 -> 2 and 0.6 -> 1
