"""band-5, session 9: the drum-kit rule in decoding (`band_decoding.kit_units`, `DecodingStats.update_kit`).

Data: the MIT-licensed multitrack fixtures (tests/fixtures/realmidi/miditok_tests, see LICENCE-NOTE.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import REALMIDI
from tunesmith.core.score import note_table
from tunesmith.generation.band import band_representation
from tunesmith.io.midi import read_midi
from tunesmith.models import build_model, make_config
from tunesmith.models.band import BandModel
from tunesmith.models.band_decoding import DecodingStats, kit_units, piece_kit_size
from tunesmith.models.window_ae import roll_planes

MULTITRACK = REALMIDI / "miditok_tests" / "MIDIs_multitrack"
DRUMS = 4
KICK, SNARE, HAT, AGOGO = 36, 38, 42, 67
pytestmark = pytest.mark.usefixtures("one_thread")


def _groove(windows: int = 4, window: int = 8) -> torch.Tensor:
    """Drum onset probabilities (1, T, 128): kick, snare and hat in every window, and in window 2 a sure
    agogo where the hat is faint (the rare piece a window's own ranking would pick)."""
    onset = torch.zeros(1, windows * window, 128)
    for w in range(windows):
        at = w * window
        onset[0, at : at + window : 4, KICK] = 0.6
        onset[0, at + 2 : at + window : 4, SNARE] = 0.6
        onset[0, at : at + window, HAT] = 0.05 if w == 2 else 0.5
    onset[0, 2 * window + 1, AGOGO] = 0.9
    return onset


def test_each_window_keeps_at_most_kit_pitches_and_the_pieces_common_kit():
    onset = _groove()
    allowed = kit_units(onset, 8, torch.tensor(3.0))
    per_window = allowed.reshape(1, 4, 8, 128).any(2)  # (1, windows, 128)
    assert (per_window.sum(-1) == 3).all()
    assert per_window[0, :, [KICK, SNARE, HAT]].all() and not allowed[..., AGOGO].any()
    alone = kit_units(onset[:, 16:24], 8, 3.0)  # window 2 on its own share: the agogo outranks the faint hat
    assert alone[0, 0, AGOGO] and not alone[0, 0, HAT]
    assert kit_units(onset, 8, 0.2).reshape(1, 4, 8, 128).any(2).sum(-1).eq(1).all()  # at least one piece


def test_the_piece_kit_grows_with_the_span_as_measured_and_bounds_every_window():
    assert piece_kit_size(4.0, 5.0, 1) == 4 and piece_kit_size(4.0, 5.0, 2) == 5 and piece_kit_size(4.0, 5.0, 8) == 7
    assert piece_kit_size(4.0, 3.5, 8) == 4  # a pair never uses fewer pieces than one window
    onset = _groove()
    onset[0, 24:32:2, 49] = 0.9  # a crash run in the last window only: a window's own top piece
    tight = kit_units(onset, 8, 3.0, 3.0)  # no growth: the piece keeps 3 pitches, every window the same
    assert tight.any(1).sum() == 3 and not tight[..., 49].any()
    grown = kit_units(onset, 8, 3.0, 3.5)  # 4 windows: 3 + 0.5 x 2 = 4 pitches over the piece
    assert grown.any(1).sum() == 4 and grown[0, 24:, 49].all() and not grown[0, :24, 49].any()
    assert grown.reshape(1, 4, 8, 128).any(2).sum(-1).eq(3).all()


def test_the_expected_rule_moves_the_drum_hits_onto_the_kit_without_changing_their_number():
    probs = torch.full((1, 5, 2, 32, 128), 1e-4)
    probs[0, DRUMS, 0] = _groove()[0].clamp(min=1e-4)
    probs[0, DRUMS, 1] = probs[0, DRUMS, 0]
    logits = torch.logit(probs)
    free = DecodingStats(8, voicing=True, bar=8).decode(logits, "expected", None)[0][0, DRUMS]
    stats = DecodingStats(8, voicing=True, bar=8, kit=True)
    stats.kit.copy_(torch.tensor([3.0, 3.5]))
    kept = stats.decode(logits, "expected", None)[0][0, DRUMS]  # (T, 128)
    assert free[:, AGOGO].any() and not kept[:, AGOGO].any()
    assert kept.sum() == free.sum()  # the count rule still sets how many hits each bar has
    assert kept.reshape(4, 8, 128).any(1).sum(-1).max() == 3


def _hand_counted(name: str, windows: int) -> list[set[int]]:
    """The drum pitches of each of the first 2-bar windows of a fixture, read from its notes (16th steps)."""
    score = read_midi(MULTITRACK / name)
    table = note_table(score)
    drums = table["is_drum"]
    step = np.rint(table["start"][drums] / (score.ticks_per_quarter / 4)).astype(int)
    return [set(table["pitch"][drums][(step >= 32 * w) & (step < 32 * w + 32)].tolist()) for w in range(windows)]


def _planes(name: str, windows: int) -> torch.Tensor:
    """planes (windows, 5, 2, 32, 128) of a fixture's first 2-bar windows."""
    roll = band_representation(build_model("band", make_config("band", {}, {}))).encode(read_midi(MULTITRACK / name))
    frames = torch.from_numpy(roll[:, : 32 * windows].astype("float32")).permute(1, 0, 2)
    return roll_planes(frames.reshape(windows, 32, 5, 128))


def _lower_median(values: list[int]) -> int:
    return sorted(values)[(len(values) - 1) // 2]


def test_the_kits_are_the_medians_of_real_windows_and_pairs_counted_by_hand():
    stats = DecodingStats(32, kit=True)
    real = torch.ones(8, 32, dtype=torch.bool), torch.ones(8, dtype=torch.bool)
    for name, window_kit, pair_kit in (("All The Small Things.mid", 3, 3), ("In Too Deep.mid", 5, 6)):
        kits = _hand_counted(name, 9)  # windows 0-7: [4, 3, 3, 3, 5, 3, 3, 3], [1, 5, 5, 5, 6, 5, 6, 5]
        assert _lower_median([len(k) for k in kits[:8]]) == window_kit
        pairs = [len(a | b) for a, b in zip(kits[:8], kits[1:], strict=True)]  # (0, 1) ... (7, 8)
        assert _lower_median(pairs) == pair_kit  # [4, 3, 3, 5, 5, 3, 3, 3], [6, 5, 5, 6, 6, 6, 6, 7]
        planes = _planes(name, 9)
        stats.update_kit(planes[:8], real[0], planes[1:], real[1])
    assert stats.kit.tolist() == [3 + (5 - 3) / 2, 3 + (6 - 3) / 2]  # the first batch sets them, the second halves
    assert stats.kit_batches.tolist() == [2, 2]


def test_the_kit_counts_only_real_steps_of_windows_where_drums_play():
    planes = _planes("All The Small Things.mid", 8)
    stats = DecodingStats(32, kit=True)
    stats.update_kit(torch.zeros_like(planes), torch.ones(8, 32, dtype=torch.bool))
    assert stats.kit.tolist() == [128, 128] and stats.kit_batches.tolist() == [0, 0]  # no drums: nothing learned
    mask = torch.zeros(8, 32, dtype=torch.bool)
    mask[4] = True  # only window 4 (5 pitches) is real; the silent padded windows do not pull the median down
    stats.update_kit(planes, mask)
    assert float(stats.kit[0]) == 5


def test_training_measures_both_kits_from_the_window_pairs_of_each_batch():
    planes = _planes("What a Fool Believes.mid", 8)  # 4 pairs of consecutive windows, as training batches hold them
    roll = band_representation(build_model("band", make_config("band", {}, {}))).encode(
        read_midi(MULTITRACK / "What a Fool Believes.mid"))[:, :256]
    batch = {"frames": torch.from_numpy(roll.astype("float32")).permute(1, 0, 2).reshape(4, 64, 5, 128),
             "mask": torch.ones(4, 64, dtype=torch.bool)}
    config = {**BandModel.debug_config(), "window": 32, "kit": True}
    model = build_model("band", make_config("band", config, {})).train()
    model.loss(batch)
    expected = DecodingStats(32, kit=True)
    expected.update_kit(planes[0::2], torch.ones(4, 32, dtype=torch.bool), planes[1::2], torch.ones(4).bool())
    assert model.notes.kit.tolist() == expected.kit.tolist() and model.notes.kit_batches.tolist() == [1, 1]


def test_a_config_without_the_flag_has_no_kit_tables_and_decodes_as_before():
    old = build_model("band", make_config("band", BandModel.debug_config(), {}))
    assert not old.config.kit and not any("kit" in k for k in old.state_dict())
    flagged = build_model("band", make_config("band", {**BandModel.debug_config(), "kit": True}, {}))
    assert {"notes.kit", "notes.kit_batches"} <= set(flagged.state_dict())
    logits = torch.randn(2, 5, 2, 32, 128, generator=torch.Generator().manual_seed(0)) * 2 - 4
    golden = {  # (hits, sum of flat indices mod 10007) from band_decoding.py before the kit rule (commit 5786ac6)
        (False, "expected"): ((3879, 19372071), (4142, 20379748)),
        (False, "threshold"): ((3639, 18333668), (3830, 18942943)),
        (True, "expected"): ((1363, 8246857), (1333, 8046500)),
        (True, "threshold"): ((1147, 7253152), (1108, 6913337)),
    }
    for (voicing, rule), expected in golden.items():
        stats = DecodingStats(16, voicing=voicing, harmony=2.0 if voicing else 0.0, bar=8)
        stats.count_scale.fill_(1.5)
        stats.thresholds.fill_(0.2)
        if voicing:
            stats.span.copy_(torch.tensor([12.0, 14, 10, 20, 128]))
            stats.voices.copy_(torch.tensor([2.0, 2, 1, 3, 128]))
        assert tuple(_digest(x) for x in stats.decode(logits, rule, None)) == expected


def _digest(x: torch.Tensor) -> tuple[int, int]:
    index = x.flatten().nonzero().flatten()
    return int(index.numel()), int((index % 10007).sum())
