"""MidiNet's history condition (`history`, `lambda_repeat`) and growing a trained model into it: the
history features against hand-computed values, the old recipes building the old model, the history
changing what is generated, the repeat term, the grown model starting as the old function, and a
debug run end to end."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from tunesmith.core.errors import UserError
from tunesmith.data.bar_pairs import HISTORY_DIM, history_features, piece_profile
from tunesmith.data.build import prepare_data
from tunesmith.generation.generate import GenerateRequest, generate_scores
from tunesmith.models.checkpoint import load_model, save_checkpoint
from tunesmith.models.midinet import MidiNet, MidiNetConfig
from tunesmith.models.midinet_bars import pitches_to_bars, repeat_share
from tunesmith.representations.bars import BarsRepresentation
from tunesmith.training.config import load_config
from tunesmith.training.init_from import initialise_from
from tunesmith.training.loop import train

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "debug" / "midinet.yaml"
SMALL = {"noise_dim": 8, "gen_hidden": 32, "gen_channels": 8, "cond_channels": 4, "disc_first_channels": 4,
         "disc_channels": 8, "disc_hidden": 16, "seed_bank": 8, "chords": True, "profile": True}

pytestmark = pytest.mark.usefixtures("one_thread")


def _bar(pitches: list[int]) -> np.ndarray:
    """(16, 128) one bar: each pitch held for 16 / len(pitches) steps."""
    steps = np.repeat(pitches, 16 // len(pitches))
    return pitches_to_bars(torch.from_numpy(steps)[None]).numpy()[0]


def test_history_features_against_hand_computed_values():
    low, high = _bar([60, 64]), _bar([67, 72])
    piece = np.stack([low, low, low, high, high, high])
    profile = piece_profile(piece)
    first = history_features(piece[:0], profile)  # the piece's first bar: only its position
    assert first.shape == (HISTORY_DIM,) and first[:15].sum() == 0 and first[15] == 1
    after_two = history_features(piece[:2], profile)  # C E | C E: repeated, third bar of the phrase
    assert after_two[[0, 4]] == pytest.approx([0.5, 0.5]) and after_two[14] == 1 and after_two[17] == 1
    assert after_two[12] == pytest.approx(((60 + 64) / 2 - (62 + 69.5) / 2) / 12)  # 0.5 octave below
    assert after_two[13] == pytest.approx(2 / 12)
    after_six = history_features(piece, profile)  # the last 4 bars only: C E, then G C' three times
    assert after_six[[0, 4, 7]] == pytest.approx([0.5, 0.125, 0.375]) and after_six[21] == 1
    assert history_features(piece[:4], profile)[14] == 0  # high follows low: no repeat


def test_items_carry_their_history():
    data = prepare_data(load_config(RECIPE).data, "bars")
    piece, i = data.train.index[5]
    bars, _ = data.train.pieces[piece]
    expected = history_features(bars[:i], piece_profile(bars))
    assert np.allclose(data.train[5]["history"].numpy(), expected)


def test_old_recipes_build_the_old_model():
    for recipe, cond in (("midinet.yaml", 13), ("midinet_key.yaml", 13 + 14)):
        config = MidiNetConfig(**load_config(ROOT / "configs" / recipe).model.config)
        model = MidiNet(config)
        assert not config.history and config.lambda_repeat == 0
        assert model.generator.fc0[0].in_features == config.noise_dim + cond
        batch = model.example_batch(4)
        del batch["history"]  # the old model never reads it
        assert "repeat_match" not in model.generator_loss(batch)
    with pytest.raises(UserError, match="profile"):
        MidiNet.validate_config(MidiNetConfig(**{**SMALL, "profile": False}, history=True))


def test_history_changes_the_generated_bars():
    torch.manual_seed(0)
    model = MidiNet(MidiNetConfig(**SMALL, history=True)).eval()
    start = torch.from_numpy(_bar([60, 62, 64, 65]))[None].expand(4, -1, -1)
    profiles = torch.from_numpy(piece_profile(start[:1].numpy())).expand(4, -1)
    chords = torch.zeros(3, 13)
    quiet = torch.zeros(4, 3, 16, 128)
    busy = torch.from_numpy(_bar([72, 71, 69, 67]))[None, None].expand(4, 3, -1, -1)

    def run(before: torch.Tensor | None) -> torch.Tensor:
        return model.continue_bars(start, 3, chords, torch.Generator().manual_seed(1), None, profiles, before)

    assert torch.equal(run(None), run(None))
    assert not torch.equal(run(quiet), run(busy))


def test_repeat_share_and_its_term():
    bar = torch.from_numpy(_bar([60, 62, 64, 65]))[None]
    half = torch.from_numpy(_bar([60, 62, 67, 69]))[None]
    assert repeat_share(bar, bar).item() == 1 and repeat_share(half, bar).item() == 0.5
    model = MidiNet(MidiNetConfig(**SMALL, history=True, lambda_repeat=1.0))
    batch = model.example_batch(8)
    batch["bar"] = batch["prev"].clone()  # every real bar repeats its predecessor
    out = model.generator_loss(batch)
    generated = 1 - (2 * out["repeat_match"].item()) ** 0.5  # the generator repeats far less
    assert 0 <= generated < 0.2


def test_grown_model_starts_as_the_old_function(tmp_path):
    """`trainer.init_from` a profile model into a history model (`MidiNet.grown_weight`)."""
    torch.manual_seed(0)
    old = MidiNet(MidiNetConfig(**SMALL, lambda_key=1.0)).eval()
    new = MidiNet(dataclasses.replace(old.config, history=True, lambda_repeat=1.0))
    for model, name in ((old, "old"), (new, "new")):
        save_checkpoint({"weights": model.state_dict(), "model": {"name": "midinet"}}, tmp_path / f"{name}.ckpt")
    counts = initialise_from(new, "midinet", None, str(tmp_path / "old.ckpt"))
    assert counts["grown"] > 0 and counts["fresh"] == 0
    new.eval()
    batch, noise = old.example_batch(6), torch.randn(6, 8)
    before = old.generate_logits(batch["prev"], old.join(batch["chord"], batch["profile"]), noise)
    after = new.generate_logits(batch["prev"], new.join(batch["chord"], batch["profile"], batch["history"]), noise)
    assert torch.allclose(before, after, atol=1e-5)
    with pytest.raises(UserError, match="a widening the family allows"):  # it only grows, never shrinks
        initialise_from(old, "midinet", None, str(tmp_path / "new.ckpt"))


@pytest.fixture(scope="module")
def history_run(tmp_path_factory) -> Path:
    config = load_config(RECIPE, ["trainer.max_epochs=2", "model.config.profile=true", "model.config.lambda_key=10.0",
                                  "model.config.history=true", "model.config.lambda_repeat=10.0"])
    return train(config, tmp_path_factory.mktemp("midinet_history") / "run")


def test_history_run_logs_repeats_and_generates(history_run):
    rows = (history_run / "metrics.csv").read_text().splitlines()
    assert any(",valid,repeat_gen," in row for row in rows) and any(",train,g_repeat_match," in row for row in rows)
    loaded = load_model(history_run / "checkpoints" / "best.ckpt")
    for chords in (None, ["C", "G", "Am", "F"]):
        scores = generate_scores(loaded, GenerateRequest(n=2, bars=4, seed=3, chords=chords))
        assert all(score.end() == 4 * 4 * score.ticks_per_quarter for score in scores)
        assert all(len(BarsRepresentation().encode(score)) <= 4 for score in scores)


def test_redraws_replace_note_for_note_repeats_only():
    """A generator that always repeats its previous bar on the first draw: without redraws every bar is
    the start bar; with one redraw none repeats its predecessor, and only repeating rows were redrawn."""
    model = MidiNet(MidiNetConfig(**SMALL)).eval()
    start = torch.from_numpy(np.stack([_bar([60, 62, 64, 65]), _bar([67, 65, 64, 62])]))
    sizes: list[int] = []

    def repeat_first(prev, cond, outside, generator, sampling, prior=None):
        sizes.append(len(prev))
        first = not model.config.redraws or len(sizes) % 2  # with redraws: calls alternate first / again
        return prev.clone() if first else torch.roll(prev, 1, dims=-1)

    model.draw_bar = repeat_first
    chords = torch.zeros(3, 13)
    same = model.continue_bars(start, 3, chords, torch.Generator().manual_seed(0))
    assert torch.equal(same, start[:, None].expand(-1, 3, -1, -1))
    sizes.clear()
    model.config.redraws = 1
    bars = model.continue_bars(start, 3, chords, torch.Generator().manual_seed(0))
    previous = torch.cat([start[:, None], bars[:, :-1]], dim=1)
    assert not (bars == previous).flatten(2).all(2).any()
    assert sizes == [2, 2] * 3


def test_spread_scale_widens_what_the_generator_is_told():
    torch.manual_seed(0)
    model = MidiNet(MidiNetConfig(**SMALL)).eval()
    start = torch.from_numpy(_bar([60, 64, 67, 72]))[None].expand(3, -1, -1)
    profiles = torch.from_numpy(piece_profile(start[:1].numpy())).expand(3, -1).clone()
    kept = profiles.clone()

    def run() -> torch.Tensor:
        return model.continue_bars(start, 2, torch.zeros(2, 13), torch.Generator().manual_seed(1), None, profiles)

    plain = run()
    model.config.spread_scale = 50.0  # an untrained generator: a large change, to flip its argmax
    assert not torch.equal(run(), plain) and torch.equal(profiles, kept)
    model.config.spread_scale = 1.0
    assert torch.equal(run(), plain)


def test_hold_bias_holds_notes_longer():
    """An untrained generator changes note at most steps; a large hold bonus holds each bar's first
    choice through the bar, a moderate one changes less often than none; 0 is the old argmax."""
    torch.manual_seed(0)
    model = MidiNet(MidiNetConfig(**SMALL)).eval()
    start = torch.from_numpy(_bar([60, 62, 64, 65]))[None].expand(8, -1, -1)

    def changes(hold: float) -> float:
        model.config.hold_bias = hold
        bars = model.continue_bars(start, 4, torch.zeros(4, 13), torch.Generator().manual_seed(2))
        pitches = bars.argmax(-1) + 200 * (bars.amax(-1) == 0)  # rests apart
        return float((pitches[..., 1:] != pitches[..., :-1]).float().mean())

    assert changes(1e6) == 0 and changes(0.5) < changes(0.0)


def test_off_key_penalty_keeps_notes_on_the_pieces_profile():
    torch.manual_seed(0)
    model = MidiNet(MidiNetConfig(**SMALL, off_key_penalty=float("inf"))).eval()
    piece = torch.from_numpy(np.stack([_bar([62, 64, 66, 67]), _bar([69, 71, 73, 74])]))  # D major
    profiles = torch.from_numpy(piece_profile(piece.numpy()))[None].expand(6, -1)
    model.bank_pitches[:2] = torch.tensor([[60] * 16, [79] * 16], dtype=torch.int16)  # range 60..79
    model.bank_count += 2
    bars = model.continue_bars(piece[-1:].expand(6, -1, -1), 4, torch.zeros(4, 13),
                               torch.Generator().manual_seed(0), None, profiles)
    pitches = bars.argmax(-1)[bars.amax(-1) > 0]
    assert len(pitches) and set((pitches % 12).tolist()) <= {2, 4, 6, 7, 9, 11, 1}
    model.config.off_key_penalty = 0.0
    free = model.continue_bars(piece[-1:].expand(6, -1, -1), 4, torch.zeros(4, 13),
                               torch.Generator().manual_seed(0), None, profiles)
    assert not set((free.argmax(-1)[free.amax(-1) > 0] % 12).tolist()) <= {2, 4, 6, 7, 9, 11, 1}


def test_leap_penalty_shortens_leaps_from_the_last_note():
    torch.manual_seed(0)
    model = MidiNet(MidiNetConfig(**SMALL)).eval()
    start = torch.from_numpy(np.stack([_bar([60, 62, 64, 65]), np.zeros((16, 128), np.float32)]))
    assert model.last_pitch(start).tolist() == [65, -1]
    start = start[:1].expand(8, -1, -1)

    def mean_leap(penalty: float) -> float:
        model.config.leap_penalty = penalty
        bars = model.continue_bars(start, 4, torch.zeros(4, 13), torch.Generator().manual_seed(2))
        pitches = bars.argmax(-1)[bars.amax(-1) > 0].float()  # sounding steps in order, bar after bar
        return float((pitches[1:] - pitches[:-1]).abs().mean())

    assert mean_leap(24.0) < mean_leap(0.0) / 2


def test_redraws_replace_silent_bars():
    model = MidiNet(MidiNetConfig(**SMALL, redraws=2)).eval()
    start = torch.from_numpy(_bar([60, 62, 64, 65]))[None].expand(2, -1, -1)
    calls: list[int] = []

    def silent_first(prev, cond, bias, generator, sampling, prior=None):
        calls.append(len(prev))
        return torch.zeros_like(prev) if len(calls) % 2 else torch.roll(prev, 1, dims=-1)

    model.draw_bar = silent_first
    bars = model.continue_bars(start, 2, torch.zeros(2, 13), torch.Generator().manual_seed(0))
    assert bars.flatten(2).any(2).all() and calls == [2, 2, 2, 2]
