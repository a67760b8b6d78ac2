"""conv-vae decoding by voices (`models/conv_vae_voices.py`): voice leading, chords, ties and eighths, the
chained window latents, the config's refusals, and the shipped conv-vae-bach's rhythm and harmony."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tunesmith.core.errors import UserError
from tunesmith.models import build_model, make_config
from tunesmith.models.base import SamplePlan
from tunesmith.models.conv_vae import correlated_windows
from tunesmith.models.conv_vae_decoding import cell_roll
from tunesmith.models.conv_vae_voices import in_chord, led_sets, motion, voice_roll
from tunesmith.models.distributions import SamplingConfig
from tunesmith.representations import get_representation

C4 = 60 - 21  # piano key index of middle C


def keys(*pitches: int, k: int = 88) -> torch.Tensor:
    row = torch.zeros(k, dtype=torch.bool)
    row[[p - 21 for p in pitches]] = True
    return row


def test_in_chord_accepts_triads_and_sevenths_in_any_voicing_and_refuses_clusters():
    sets = torch.stack([keys(48, 64, 67, 72), keys(43, 59, 65, 74), keys(57, 60, 64, 69), keys(60, 62, 64),
                        keys(60, 61, 67)])
    assert in_chord(sets).tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]  # C, G7, Am; C-D-E, C-C#-G


def test_motion_is_zero_for_the_same_set_and_grows_with_the_leap():
    previous = keys(48, 64, 67, 72)[None]
    sets = torch.stack([keys(48, 64, 67, 72), keys(47, 65, 67, 74), keys(36, 52, 55, 60)])[None]
    moved = motion(sets, previous)[0].tolist()
    assert moved[0] == 0.0 and 0 < moved[1] < moved[2]


def test_led_sets_follow_the_decoder_without_leading_and_move_little_with_it():
    q = torch.zeros(1, 8, 88)
    q[0, :, [C4, C4 + 1, C4 + 12, C4 + 13]] = 0.5  # two keys per cell out of four equally likely pairs ...
    q[0, 0] = 0.0
    q[0, 0, [C4, C4 + 12]] = 1.0  # ... the first cell fixed to C4 + C5
    free = led_sets(q, 4, 0.0, 0.0, 32, torch.Generator().manual_seed(0))
    led = led_sets(q, 4, 8.0, 0.0, 32, torch.Generator().manual_seed(0))
    assert free.sum(-1).eq(2).all() and led.sum(-1).eq(2).all()
    assert (led == led[:, :1]).all()  # strong leading keeps C4 + C5 (motion 0), the decoder allows it
    assert not (free == free[:, :1]).all()


def test_voice_roll_holds_ties_re_strikes_and_splits_quarters_into_eighths():
    probs = torch.zeros(1, 2, 12, 88)
    probs[0, 1, :, C4] = 0.9  # C4 held through three cells: sustain everywhere, so tied
    probs[0, 0, 0, C4] = 0.9
    probs[0, 1, :, C4 + 7] = 0.9  # G4 re-struck at each cell: onset at the beats
    probs[0, 0, 0::4, C4 + 7] = 0.9
    probs[0, 1, 0::4, C4 + 7] = 0.0
    probs[0, 0, 2::4, C4 + 9] = 0.5  # an off-beat onset mass next to G4: A4 on the eighth after it
    image = voice_roll(probs, 4, 4, 0.5, 0.0, 10.0, 1.0, 8, torch.Generator().manual_seed(0))
    onset, sustain = image[0, 0], image[0, 1]
    assert (onset + sustain).max() == 1
    score = get_representation("pianoroll").decode(image[0].permute(1, 2, 0).numpy().astype(bool))
    step = score.ticks_per_quarter // 4
    notes = sorted((n.pitch, n.time // step, n.duration // step) for n in score.tracks[0].notes)
    assert (60, 0, 12) in notes  # one note of three quarters
    assert [n for n in notes if n[0] == 67] == [(67, 0, 2), (67, 4, 2), (67, 8, 2)]  # eighths ...
    assert [n for n in notes if n[0] == 69] == [(69, 2, 2), (69, 6, 2), (69, 10, 2)]  # ... moving up a step


def test_correlated_windows_keep_the_marginal_and_correlate_neighbours():
    eps = torch.randn(4000, 3, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(correlated_windows(eps, 0.0), eps)
    u = correlated_windows(eps, 0.8)
    assert torch.equal(u[:, 0], eps[:, 0]) and abs(float(u[:, 2].std()) - 1) < 0.05
    assert abs(float(torch.corrcoef(torch.stack([u[:, 1, 0], u[:, 2, 0]]))[0, 1]) - 0.8) < 0.05


def debug_model(**extra):
    config = {"window": 16, "latent_dim": 4, "channels": 4, "layers": 2, "hidden": 16, **extra}
    return build_model("conv-vae", make_config("conv-vae", config, {}))


def test_voices_decoding_samples_whole_pieces_and_greedy_is_the_cell_rule():
    torch.manual_seed(0)
    model = debug_model(decoding="voices", leading=0.5, harmony=2.0, eighths=2.0, window_correlation=0.5)
    with torch.no_grad():
        model.ups[-1].bias.fill_(0.0)
    rolls = model.sample(SamplePlan(n=2, bars=2), torch.Generator().manual_seed(0))
    assert all(r.shape == (32, 88, 2) and r.any(-1).sum(1).max() <= 4 for r in rolls)
    z = torch.zeros(1, 4)
    greedy = model.decode_latents(z, 16, SamplingConfig(greedy=True))[0]
    with torch.no_grad():
        cells = cell_roll(torch.sigmoid(model.decode_logits(z)), 4, 4, onset_plane=True)[0].permute(1, 2, 0)
    assert (greedy == cells.numpy().astype(bool)).all()


@pytest.mark.parametrize("extra, words", [
    ({"decoding": "voices", "frame": "multitrack"}, "onset plane"),
    ({"decoding": "voices", "cell": 3, "window": 24}, "even cell"),
    ({"decoding": "voices", "leading": -1.0}, "leading"),
    ({"harmony": float("nan")}, "harmony"),
    ({"window_correlation": 1.5}, "window_correlation"),
    ({"candidates": 0}, "candidates"),
    ({"contrast": -0.5}, "contrast"),
    ({"offbeat_ratio": 0.0}, "offbeat_ratio"),
])
def test_conv_vae_refuses_bad_voices_settings_in_one_sentence(extra, words):
    with pytest.raises(UserError, match=words):
        debug_model(**extra)


def test_shipped_conv_vae_bach_moves_in_quarters_and_eighths_mostly_in_chords():
    from tunesmith.evaluation.metrics import note_length_histogram
    from tunesmith.models.checkpoint import load_model
    from tunesmith.models.conv_vae_voices import cell_means

    loaded = load_model("conv-vae-bach")
    rolls = loaded.model.sample(SamplePlan(n=4, bars=8), torch.Generator().manual_seed(0))
    lengths = np.mean([note_length_histogram(loaded.representation.decode(r)) for r in rolls], 0)
    # chorales (training pieces, this representation): quarters 0.54, eighths 0.33, halves 0.07
    assert 0.4 < lengths[2] < 0.75 and 0.2 < lengths[3] < 0.45 and lengths[1] > 0.01
    quarters = cell_means(torch.from_numpy(np.stack([r.any(-1) for r in rolls])).float(), 4) > 0.5
    # of the quarters' key sets (held through their first eighth), most are one triad or seventh chord
    assert float(in_chord(quarters).mean()) > 0.8  # (decoding: cells 0.46)


def test_chordal_keys_mark_the_keys_that_complete_a_chord_with_the_cell():
    from tunesmith.models.conv_vae_voices import chordal_keys

    fits = chordal_keys(keys(60, 64)[None, None])[0, 0]  # C4 + E4
    assert fits[67 - 21] == 1 and fits[69 - 21] == 1 and fits[55 - 21] == 1  # G (C major), A (A minor), low G
    assert fits[62 - 21] == 0 and fits[61 - 21] == 0  # D, C#: no chord holds C, D, E or C, C#, E


def test_contrast_gives_a_piece_with_more_off_beat_onsets_more_eighths():
    probs = torch.zeros(2, 2, 64, 88)
    probs[:, 0, 0::4, [C4, C4 + 4, C4 + 7]] = 0.9  # three keys struck on every beat
    probs[:, 1, :, [C4, C4 + 4, C4 + 7]] = 0.9
    probs[:, 0, 2::4, [C4 + 2, C4 + 5, C4 + 9]] = 0.05  # off-beat onsets next to them ...
    probs[1, 0, 2::4, [C4 + 2, C4 + 5, C4 + 9]] = 0.15  # ... three times as many in piece 1

    def eighth_onsets(contrast: float) -> list[int]:
        image = voice_roll(probs, 4, 4, 0.5, 0.0, 1.0, 1.0, 8, torch.Generator().manual_seed(0), contrast, 0.1)
        return image[:, 0, 2::4].sum((1, 2)).int().tolist()

    plain, stretched = eighth_onsets(0.0), eighth_onsets(2.0)
    assert plain[0] < plain[1] and stretched[0] < plain[0] and stretched[1] > plain[1]
