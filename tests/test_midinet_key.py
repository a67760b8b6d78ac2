"""MidiNet's key and register condition (`profile`): the piece profile, the out-of-key term, fitting a
start bar to --chords, old checkpoints loading unchanged, and a debug run end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tunesmith.core.errors import UserError
from tunesmith.data.bar_pairs import piece_profile, transpose_profile
from tunesmith.data.build import prepare_data
from tunesmith.generation.generate import GenerateRequest, generate_scores
from tunesmith.models.checkpoint import load_model
from tunesmith.models.midinet import MidiNet, MidiNetConfig
from tunesmith.models.midinet_bars import (
    fit_to_chords,
    key_statistics,
    out_of_key_mass,
    pitches_to_bars,
    relative_histograms,
)
from tunesmith.representations.bars import BarsRepresentation, chord_vectors
from tunesmith.training.config import load_config
from tunesmith.training.loop import train

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "debug" / "midinet.yaml"
SMALL = {"noise_dim": 8, "gen_hidden": 32, "gen_channels": 8, "cond_channels": 4, "disc_first_channels": 4,
         "disc_channels": 8, "disc_hidden": 16, "seed_bank": 8, "chords": True}
D_MAJOR = [62, 64, 66, 67, 69, 71, 73, 74]  # one octave of the D major scale

pytestmark = pytest.mark.usefixtures("one_thread")


def _bar(pitches: list[int]) -> np.ndarray:
    """(16, 128) one bar: each pitch held for 16 / len(pitches) steps."""
    steps = np.repeat(pitches, 16 // len(pitches))
    return pitches_to_bars(torch.from_numpy(steps)[None]).numpy()[0]


def test_piece_profile_against_hand_computed_values():
    bars = np.stack([_bar([60, 64]), _bar([67, 72])])  # C for 8 steps, E 8, G 8, C' 8
    profile = piece_profile(bars)
    expected_pc = np.zeros(12)
    expected_pc[[0, 4, 7]] = [0.5, 0.25, 0.25]
    assert np.allclose(profile[:12], expected_pc)
    mean = (60 + 64 + 67 + 72) / 4
    assert profile[12] == pytest.approx((mean - 60) / 12)
    assert profile[13] == pytest.approx(np.std([60, 64, 67, 72]) / 12, rel=1e-6)
    assert not piece_profile(np.zeros((2, 16, 128))).any()  # silence: all zeros
    up = transpose_profile(profile, 2)
    assert np.allclose(up, piece_profile(np.roll(bars, 2, axis=-1)), atol=1e-6)  # = the transposed piece's


def test_fit_to_chords_moves_a_d_major_bar_to_c_for_c_g_am_f():
    bar = _bar(D_MAJOR)
    pitches = torch.from_numpy(np.where(bar.any(-1), bar.argmax(-1), -1))[None]
    moved, profile = fit_to_chords(pitches, piece_profile(bar[None])[None], chord_vectors("C G Am F"))
    assert torch.equal(moved, pitches - 2)  # down a whole tone: D major -> C major
    assert np.allclose(profile[0], piece_profile(np.roll(bar, -2, axis=-1)[None]), atol=1e-6)
    same, _ = fit_to_chords(pitches, piece_profile(bar[None])[None], chord_vectors("D A Bm G"))
    assert torch.equal(same, pitches)  # already in D: left where it is


def test_out_of_key_term_and_statistics():
    bar = torch.from_numpy(_bar(D_MAJOR))[None]
    profile = torch.from_numpy(piece_profile(bar.numpy()))[None]
    assert key_statistics(bar, profile) == {"out_of_key": 0.0, "leap": pytest.approx(12 / 7)}
    c_sharp_free = torch.from_numpy(piece_profile(_bar([60, 62, 64, 65, 67, 69, 71, 72])[None]))[None]
    assert key_statistics(bar, c_sharp_free)["out_of_key"] == pytest.approx(0.25)  # F#, C#: 4 of 16 steps
    narrow = c_sharp_free.clone()
    narrow[0, 12:] = torch.tensor([0.5, 1 / 12])  # mean F#4 (66), 1 semitone spread: 2.5 reach
    assert key_statistics(bar, narrow)["out_of_key"] == pytest.approx(12 / 16)  # only E4 (64), G4 (67) fit
    logits = torch.full((1, 16, 129), -30.0)
    logits[0, :8, 61], logits[0, 8:, 62] = 30.0, 30.0  # C# then D
    assert float(out_of_key_mass(logits, c_sharp_free)) == pytest.approx(0.5, abs=1e-6)


def test_relative_histograms_count_from_the_pieces_key_and_register():
    c_song = np.stack([_bar([60, 64, 67, 72])])  # C E G C' (mean 65.75 -> 66), main class C
    d_song = np.roll(c_song, 2, axis=-1)  # the same a tone higher
    hists = [relative_histograms(torch.from_numpy(song).float(), torch.from_numpy(piece_profile(song))[None])
             for song in (c_song, d_song)]
    assert torch.allclose(hists[0], hists[1])  # transposition changes nothing, relative to the piece
    expected = torch.zeros(37)
    expected[[0, 4, 7]] = torch.tensor([0.5, 0.25, 0.25])  # degrees 0, 4, 7 from C
    expected[12 + 12 + torch.tensor([-6, -2, 1, 6])] = 0.25  # 60, 64, 67, 72 around 66
    assert torch.allclose(hists[0][0], expected)


def test_key_match_trains_the_generator_toward_the_key():
    """Only the key-matching term (no adversarial or matching weights): a few steps on C major songs
    lower it and the generator's mass off the key."""
    torch.manual_seed(0)
    model = MidiNet(MidiNetConfig(**SMALL, profile=True, lambda_key=1.0))
    scale = torch.from_numpy(_bar([60, 62, 64, 65, 67, 69, 71, 72]))
    batch = model.example_batch(16)
    batch["bar"] = scale.expand(16, -1, -1).clone()
    batch["profile"] = torch.from_numpy(piece_profile(scale[None].numpy())).expand(16, -1).clone()
    optimizer = torch.optim.Adam(model.generator.parameters(), lr=1e-2)

    def measure() -> tuple[float, float]:  # (key_match, share of generated notes off the key)
        torch.manual_seed(1)
        key_match = float(model.generator_loss(batch)["key_match"].detach())
        torch.manual_seed(1)
        return key_match, float(model.validation_metrics(batch)["out_of_key_gen"])

    first = measure()
    for _ in range(30):
        optimizer.zero_grad()
        model.generator_loss(batch)["key_match"].backward()
        optimizer.step()
    last = measure()
    assert last[0] < first[0] / 2 and last[1] < first[1] / 2, (first, last)
    with pytest.raises(UserError, match="profile"):
        MidiNet.validate_config(MidiNetConfig(**SMALL, lambda_key=1.0))


def test_models_without_profiles_keep_their_shapes_and_buffers():
    plain = MidiNet(MidiNetConfig(**SMALL))
    assert "bank_profiles" not in dict(plain.named_buffers())  # old checkpoints load strictly
    assert plain.generator.fc0[0].in_features == 8 + 13
    keyed = MidiNet(MidiNetConfig(**SMALL, profile=True))
    assert keyed.generator.fc0[0].in_features == 8 + 13 + 14
    # D judges bars with their chord only: one that also saw the profile won every batch
    assert keyed.discriminator.fc[0].in_features == plain.discriminator.fc[0].in_features


@pytest.fixture(scope="module")
def key_run(tmp_path_factory) -> Path:
    config = load_config(RECIPE, ["trainer.max_epochs=2", "model.config.profile=true",
                                  "model.config.lambda_key=10.0"])
    return train(config, tmp_path_factory.mktemp("midinet_key") / "run")


def test_items_carry_their_piece_profile():
    data = prepare_data(load_config(RECIPE).data, "bars")
    bars, _ = data.train.pieces[0]
    assert np.allclose(data.train[0]["profile"].numpy(), piece_profile(bars))


def test_key_run_stores_profiles_and_generates_with_and_without_chords(key_run):
    loaded = load_model(key_run / "checkpoints" / "best.ckpt")
    model = loaded.model
    filled = int(min(model.bank_count, model.config.seed_bank))
    assert model.bank_profiles[:filled, :12].sum(1).allclose(torch.ones(filled))  # real profiles kept
    rows = (key_run / "metrics.csv").read_text().splitlines()
    assert any(",valid,out_of_key_gen," in row for row in rows)
    for chords in (None, ["C", "G", "Am", "F"]):
        scores = generate_scores(loaded, GenerateRequest(n=2, bars=4, seed=3, chords=chords))
        assert all(score.end() == 4 * 4 * score.ticks_per_quarter for score in scores)
        assert all(len(BarsRepresentation().encode(score)) <= 4 for score in scores)
