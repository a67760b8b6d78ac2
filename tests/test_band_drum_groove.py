"""band-5, session 10: the drum groove in decoding (`band_decoding.drum_hits`, `DecodingStats.update_groove`): the
training hits per drum pitch and step of the bar rank the kit and the steps, and each kit piece gets its share of
a bar's hits.

Data: the MIT-licensed multitrack fixtures (tests/fixtures/realmidi/miditok_tests, see LICENCE-NOTE.md)."""

from __future__ import annotations

import pytest
import torch

from conftest import REALMIDI
from tunesmith.generation.band import band_representation
from tunesmith.io.midi import read_midi
from tunesmith.models import build_model, make_config
from tunesmith.models.band import BandModel
from tunesmith.models.band_decoding import DecodingStats, drum_hits
from tunesmith.models.window_ae import roll_planes

MULTITRACK = REALMIDI / "miditok_tests" / "MIDIs_multitrack"
DRUMS = 4
KICK, SNARE, BONGO = 36, 38, 60
pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_groove_counts_real_drum_hits_per_pitch_and_step_of_the_bar():
    model = build_model("band", make_config("band", {}, {}))
    roll = band_representation(model).encode(read_midi(MULTITRACK / "Girls Just Want to Have Fun.mid"))[:, :128]
    planes = roll_planes(torch.from_numpy(roll.astype("float32")).permute(1, 0, 2).reshape(4, 32, 5, 128))
    stats = DecodingStats(32, bar=16, groove=True)
    mask = torch.ones(4, 32, dtype=torch.bool)
    mask[3, 16:] = False  # the last bar is padding: not counted
    stats.update_groove(planes, mask)
    hits = planes[:, DRUMS, 0] > 0  # (4 windows, 32 steps, 128)
    expected = hits.reshape(8, 16, 128)[:7].sum(0).T  # 7 real bars
    assert stats.groove.dtype == torch.int64 and torch.equal(stats.groove, expected.long())
    assert int(stats.groove.sum()) > 0
    share, position = stats.drum_priors()
    assert torch.isclose(share.sum(), torch.tensor(1.0)) and position.shape == (128, 16)
    assert DecodingStats(32, bar=16, groove=True).drum_priors() is None  # nothing counted: no prior


def test_each_kit_piece_gets_its_share_of_the_bar_on_its_likeliest_steps():
    onset = torch.zeros(1, 16, 128)
    onset[0, :, KICK] = 0.35  # 5.6 expected hits
    onset[0, :, SNARE] = 0.1  # 1.6
    rank = onset.clone()
    rank[0, ::4, KICK] = 0.9  # the kick's likeliest steps: the beats
    rank[0, 4::8, SNARE] = 0.9  # the snare's: beats 2 and 4
    allowed = onset > 0
    hits = drum_hits(onset, 16, torch.tensor(1.0), allowed, rank)
    assert int(hits.sum()) == 7  # round(7.2): the count of the expected rule
    # shares 7 x 5.6 / 7.2 = 5.44 and 1.56: 5 and 1, and the spare hit to the larger remainder, the snare's
    assert {0, 4, 8, 12} <= set(hits[0, :, KICK].nonzero().flatten().tolist()) and int(hits[0, :, KICK].sum()) == 5
    assert hits[0, :, SNARE].nonzero().flatten().tolist() == [4, 12]
    # the group's top units instead (expected_units) would give the kick all seven: a run of 16ths


def test_the_groove_prefers_the_common_kit_piece_and_its_usual_steps():
    stats = DecodingStats(16, bar=16, kit=True, groove=True)
    stats.kit.copy_(torch.tensor([1.0, 1.0]))  # one kit piece
    stats.groove[KICK, ::4] = 100  # kicks on the beats, many
    stats.groove[BONGO, 1::2] = 2  # bongos off the 8ths, few
    logits = torch.full((1, 5, 2, 16, 128), -9.0)
    logits[0, DRUMS, 0, :, BONGO] = -2.1  # the decoder a little surer of the bongo (p 0.109 a step)
    logits[0, DRUMS, 0, :, KICK] = -2.2  # (0.100): with the faint rest of the kit, 4 hits in the bar
    onset, _ = stats.decode(logits, "expected", None)
    drums = onset[0, DRUMS]
    assert drums.nonzero()[:, 1].unique().tolist() == [KICK]  # the kit: the kick, not the bongo
    assert drums[:, KICK].nonzero().flatten().tolist() == [0, 4, 8, 12]  # on the beats
    old = DecodingStats(16, bar=16, kit=True)  # without the groove: the bongo, in a run of 16ths
    old.kit.copy_(torch.tensor([1.0, 1.0]))
    assert old.decode(logits, "expected", None)[0][0, DRUMS][:, BONGO].nonzero().flatten().tolist() == [0, 1, 2, 3]


def test_without_the_flag_there_is_no_groove_table():
    model = build_model("band", make_config("band", BandModel.debug_config(), {}))
    assert "notes.groove" not in model.state_dict()
    flagged = build_model("band", make_config("band", {**BandModel.debug_config(), "groove": True}, {}))
    assert "notes.groove" in flagged.state_dict()
