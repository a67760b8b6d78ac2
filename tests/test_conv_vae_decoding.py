"""conv-vae decoding by expected counts (`models/conv_vae_decoding.py`): counts, voices, note starts, and
which draws the family makes for default, greedy and temperature sampling."""

from __future__ import annotations

import torch

from tunesmith.models import build_model, make_config
from tunesmith.models.base import SamplePlan
from tunesmith.models.conv_vae_decoding import expected_roll, expected_units
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
