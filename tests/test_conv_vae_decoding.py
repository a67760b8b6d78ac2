"""conv-vae decoding by expected counts and by cells (`models/conv_vae_decoding.py`): counts, voices, note
starts, and which draws the family makes for default, greedy and temperature sampling."""

from __future__ import annotations

import torch

from tunesmith.models import build_model, make_config
from tunesmith.models.base import SamplePlan
from tunesmith.models.conv_vae_decoding import cell_roll, cell_units, expected_roll, expected_units
from tunesmith.models.distributions import SamplingConfig
from tunesmith.representations import get_representation


def test_expected_units_keep_the_expected_count_of_the_most_probable_units_within_the_voices():
    sound = torch.full((1, 4, 6), 0.05)  # 24 units, sum 1.2 ...
    sound[0, :, 2] = 0.6  # ... + a line at key 2 (sum 2.4) ...
    sound[0, 1, 4] = 0.7  # ... and one unit at key 4: 3.8 in all, rounded to 4
    chosen = expected_units(sound, voices=2)
    assert chosen.sum() == 4
    assert chosen[0, :, 2].sum() == 3 and chosen[0, 1, 4]  # the line minus its weakest step, the 0.7 unit
    assert chosen.sum(-1).max() <= 2
    assert expected_units(sound, voices=1).sum(-1).max() == 1


def test_expected_roll_starts_notes_where_sound_begins_or_an_onset_beats_a_sustain():
    probs = torch.zeros(1, 2, 8, 88)
    probs[0, 1, 0:6, 40] = 1.0  # a long run at key 40 ...
    probs[0, :, 3, 40] = torch.tensor([0.95, 0.05])  # ... re-struck at step 3
    probs[0, 1, 2:4, 50] = 0.8  # a weaker two-step note: 7.6 expected units, 8 chosen
    image = expected_roll(probs, voices=4, onset_plane=True)
    onset, sustain = image[0, 0], image[0, 1]
    assert onset[:, 40].nonzero().flatten().tolist() == [0, 3] and onset[:, 50].nonzero().flatten().tolist() == [2]
    assert (onset + sustain).max() == 1  # the planes stay exclusive, as the representation writes them
    score = get_representation("pianoroll").decode(image[0].permute(1, 2, 0).numpy().astype(bool))
    notes = sorted((n.pitch, n.time, n.duration) for n in score.tracks[0].notes)
    step = score.ticks_per_quarter // 4
    assert notes == [(21 + 40, 0, 3 * step), (21 + 40, 3 * step, 3 * step), (21 + 50, 2 * step, 2 * step)]


def test_conv_vae_decodes_by_expected_counts_unless_a_temperature_is_asked():
    torch.manual_seed(0)
    model = build_model("conv-vae", make_config("conv-vae", {"window": 16, "latent_dim": 4, "channels": 4, "layers": 2,
                                                             "hidden": 16, "decoding": "expected", "voices": 3}, {}))
    (roll,) = model.sample(SamplePlan(n=1, bars=1), torch.Generator().manual_seed(0))
    sounding = roll[..., 0] | roll[..., 1]
    assert sounding.sum(1).max() <= 3 and sounding.any()
    z = torch.zeros(1, 4)
    greedy = model.decode_latents(z, 16, SamplingConfig(greedy=True))[0]
    with torch.no_grad():
        expected = expected_roll(torch.sigmoid(model.decode_logits(z)), 3, onset_plane=True)[0].permute(1, 2, 0)
    assert greedy.any() and (greedy == expected.numpy().astype(bool)).all()  # the expected-count roll, not p > 1/2
    hot = model.decode_latents(z, 16, SamplingConfig(temperature=1.0), torch.Generator().manual_seed(0))[0]
    assert (hot[..., 0] | hot[..., 1]).sum(1).max() > 3  # a draw per unit: no voice limit


def test_cell_units_draw_the_expected_count_per_cell_in_proportion_to_the_probabilities():
    sound = torch.zeros(1, 8, 10)
    sound[0, :4, 1] = 0.9  # cell 1: keys 1 (0.9), 3 (0.6) and 5 (0.5): 2.0 expected -> 2 keys
    sound[0, :4, 3] = 0.6
    sound[0, :4, 5] = 0.5
    sound[0, 4:, 7] = 0.3  # cell 2: 0.3 + 0.3 -> 1 key of 7 and 8
    sound[0, 4:, 8] = 0.3
    greedy = cell_units(sound, voices=4, cell=4)
    assert greedy[0, :4].nonzero()[:, 1].unique().tolist() == [1, 3] and greedy[0, :4].all(0)[[1, 3]].all()
    assert greedy[0, 4:].sum(-1).tolist() == [1, 1, 1, 1]  # one key held through the cell
    assert cell_units(sound, voices=1, cell=4)[0].sum(-1).max() == 1
    # drawn: key 5 (0.5 of 2.0) is among the two in about half the draws, never a key of probability 0
    picks = torch.stack([cell_units(sound, 4, 4, torch.Generator().manual_seed(i))[0, 0] for i in range(400)])
    assert picks.sum(-1).eq(2).all() and not picks[:, [0, 2, 4, 6, 9]].any()
    assert 0.25 < picks[:, 5].float().mean() < 0.6 and picks[:, 1].float().mean() > 0.7


def test_cell_roll_starts_notes_where_a_key_starts_or_a_cell_re_strikes_it():
    probs = torch.zeros(1, 2, 12, 88)
    probs[0, 1, :, 40] = 0.95  # a key held over three cells ...
    probs[0, :, 8, 40] = torch.tensor([0.9, 0.05])  # ... re-struck at the third cell's first step
    probs[0, 1, 4:8, 50] = 0.9  # and a one-cell note
    image = cell_roll(probs, voices=4, cell=4, onset_plane=True)
    onset, sustain = image[0, 0], image[0, 1]
    assert onset[:, 40].nonzero().flatten().tolist() == [0, 8] and onset[:, 50].nonzero().flatten().tolist() == [4]
    assert (onset + sustain).max() == 1
    score = get_representation("pianoroll").decode(image[0].permute(1, 2, 0).numpy().astype(bool))
    step = score.ticks_per_quarter // 4
    notes = sorted((n.pitch, n.time, n.duration) for n in score.tracks[0].notes)
    assert notes == [(21 + 40, 0, 8 * step), (21 + 40, 8 * step, 4 * step), (21 + 50, 4 * step, 4 * step)]


def test_conv_vae_cells_decoding_draws_with_the_generator_and_greedy_repeats():
    torch.manual_seed(0)
    config = {"window": 16, "latent_dim": 4, "channels": 4, "layers": 2, "hidden": 16, "decoding": "cells",
              "voices": 3, "cell": 4}
    model = build_model("conv-vae", make_config("conv-vae", config, {}))
    with torch.no_grad():
        model.ups[-1].bias.fill_(0.0)  # p about 1/2 everywhere: every cell has its 3 voices
    rolls = model.sample(SamplePlan(n=2, bars=2), torch.Generator().manual_seed(0))
    sounding = [r[..., 0] | r[..., 1] for r in rolls]
    assert all(s.shape == (32, 88) and s.sum(1).max() == 3 for s in sounding)
    assert all((s[0::4] == s[3::4]).all() for s in sounding)  # a key sounds through its whole cell
    assert not (sounding[0] == sounding[1]).all()  # pieces differ: the keys are drawn
    z = torch.zeros(1, 4)
    a, b = (model.decode_latents(z, 16, SamplingConfig(greedy=True))[0] for _ in range(2))
    assert (a == b).all()


def test_conv_vae_refuses_a_cell_that_does_not_divide_the_window():
    import pytest

    from tunesmith.core.errors import UserError

    with pytest.raises(UserError, match="cell"):
        build_model("conv-vae", make_config("conv-vae", {"window": 16, "layers": 2, "decoding": "cells", "cell": 5},
                                            {}))


def test_shipped_conv_vae_bach_prior_samples_are_four_voices_in_key_with_a_chorales_pitch_variety():
    import numpy as np

    from tunesmith.evaluation.metrics import scale_consistency
    from tunesmith.models.checkpoint import load_model

    loaded = load_model("conv-vae-bach")
    assert loaded.model.config.decoding == "voices" and loaded.model.config.prior_components == 32
    rolls = loaded.model.sample(SamplePlan(n=8, bars=16), torch.Generator().manual_seed(0))
    sounding = [r.any(-1) for r in rolls]  # (256 steps, 88 keys) each
    assert all(s.shape == (256, 88) and s.sum(1).max() <= 4 for s in sounding)
    assert np.mean([s.sum(1).mean() for s in sounding]) > 3.5  # four voices, as chorales (not a thin blur)
    # chorales use 27.5 pitches per 16 bars; expected counts decoded the same latents to 16-24 held keys
    assert 24 <= np.mean([s.any(0).sum() for s in sounding]) <= 40
    keys = [scale_consistency(loaded.representation.decode(r)) for r in rolls]
    assert np.mean(keys) >= 0.9
