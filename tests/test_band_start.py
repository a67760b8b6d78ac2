"""The start of a band piece from nothing (`models/band_start.py`): the training windows' sounding patterns,
counted in the training loop, and start windows drawn by them.

Data: the MIT-licensed multitrack fixtures (tests/fixtures/realmidi/miditok_tests, see LICENCE-NOTE.md)."""

from __future__ import annotations

import pytest
import torch

from conftest import REALMIDI
from tunesmith.generation.band import band_representation
from tunesmith.io.midi import read_midi
from tunesmith.models import build_model, make_config
from tunesmith.models.band import BandModel
from tunesmith.models.band_start import N_PATTERNS, StartDistribution
from tunesmith.models.checkpoint import load_model

MULTITRACK = REALMIDI / "miditok_tests" / "MIDIs_multitrack"
pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_pattern_is_the_sum_of_its_sounding_groups_bits():
    start = StartDistribution(10, 2, patterns=True)
    sounds = torch.tensor([[1, 0, 0, 0, 1], [1, 0, 0, 0, 1], [0, 1, 1, 1, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]]).bool()
    planes = torch.zeros(5, 5, 2, 8, 128)
    planes[:, :, 1, 3, 60] = sounds.float()  # a note in each sounding group's sustain plane
    mask = torch.ones(5, 8, dtype=torch.bool)
    mask[4, 6:] = False  # the last window is cut short: not a whole window, not counted
    start.count_patterns(planes, mask)
    assert start.patterns.nonzero().flatten().tolist() == [0, 14, 17]
    assert start.patterns[[0, 14, 17]].tolist() == [1, 1, 2] and len(start.patterns) == N_PATTERNS == 32


def test_a_start_sounds_its_drawn_pattern_and_holds_an_empty_window_elsewhere():
    # `sounding` here: a group sounds when its latent's first value is positive; the pattern: bass and drums
    start = StartDistribution(5 * 3, 4)
    start.register_buffer("patterns", torch.zeros(N_PATTERNS, dtype=torch.int64))
    start.patterns[(1 << 2) | (1 << 4)] = 7
    silent = torch.full((5, 3), -9.0)
    z = start.draw(200, 1.0, torch.Generator().manual_seed(0), silent, lambda z: z[..., 0] > 0, tries=16)
    assert z.shape == (200, 5, 3)
    for group in (0, 1, 3):
        assert torch.equal(z[:, group], silent[group].expand(200, 3))
    # each candidate group sounds about half the time: of 16 tries nearly always one with both
    assert (z[:, [2, 4], 0] > 0).all(1).float().mean() > 0.97


def test_without_counted_patterns_a_start_is_a_plain_draw_of_the_mixture():
    start = StartDistribution(5 * 3, 4, patterns=True)  # no window counted yet
    drawn = start.draw(6, 1.0, torch.Generator().manual_seed(3), torch.zeros(5, 3), lambda z: z[..., 0] > 0)
    assert torch.equal(drawn, start.sample(6, 1.0, torch.Generator().manual_seed(3)).reshape(6, 5, 3))


def test_training_counts_the_pattern_of_every_first_window_of_a_pair():
    roll = band_representation(build_model("band", make_config("band", {}, {}))).encode(
        read_midi(MULTITRACK / "What a Fool Believes.mid"))[:, :256]
    frames = torch.from_numpy(roll.astype("float32")).permute(1, 0, 2).reshape(4, 64, 5, 128)
    config = {**BandModel.debug_config(), "window": 32, "start_pattern": True}
    model = build_model("band", make_config("band", config, {})).train()
    model.loss({"frames": frames, "mask": torch.ones(4, 64, dtype=torch.bool)})
    sounds = frames[:, :32].permute(0, 2, 1, 3).flatten(2).gt(0).any(-1)  # (4 pairs, 5): window t of each pair
    codes = (sounds.long() * (1 << torch.arange(5))).sum(1)
    assert model.start.patterns.sum() == 4
    assert model.start.patterns.tolist() == torch.bincount(codes, minlength=N_PATTERNS).tolist()
    assert "start.patterns" not in build_model("band", make_config("band", BandModel.debug_config(), {})).state_dict()


def test_the_shipped_band_5_starts_from_nothing_with_the_training_windows_groups():
    # measured (48 starts, seed 0): each group's share of start windows within 0.1 of the training windows'
    # (piano 0.43, guitar 0.41, bass 0.92, strings 0.81, drums 0.96); before session 10 strings sounded in 99 %
    model = load_model("band-5").model
    assert model.config.start_pattern
    counts = model.start.patterns.double()
    shares = torch.stack([(counts * ((torch.arange(N_PATTERNS) >> g) & 1)).sum() for g in range(5)]) / counts.sum()
    generator = torch.Generator().manual_seed(0)
    silent = model.codec.encode_groups(torch.zeros(1, 5, 2, model.config.window, 128))[0]
    band = model.start.draw(48, 1.0, generator, silent, lambda z: model._sounding(z, generator))
    heard = model._sounding(band, generator).double().mean(0)
    assert (heard - shares).abs().max() < 0.1, (heard, shares)
