"""Key estimation (Krumhansl-Kessler) and key normalisation of training data (`data.normalize_key`)."""

from __future__ import annotations

import numpy as np
import pytest

from tunesmith.core.score import make_track, new_score, note_table
from tunesmith.data.augment import estimate_key, to_common_key
from tunesmith.data.build import prepare_data
from tunesmith.data.config import DataConfig


def _melody(pitches: list[int]):
    score = new_score(tpq=480)
    starts = np.arange(len(pitches)) * 480
    score.tracks.append(make_track(pitches, starts, np.full(len(pitches), 480)))
    return score


D_MAJOR = [62, 64, 66, 67, 69, 71, 73, 74, 69, 66, 62, 62]  # scale, then the tonic triad
E_MINOR = [64, 66, 67, 69, 71, 72, 75, 76, 71, 67, 64, 64]  # harmonic minor, then the tonic triad


@pytest.mark.parametrize("pitches,key", [(D_MAJOR, (2, "major")), (E_MINOR, (4, "minor"))])
def test_estimate_key_finds_the_tonic_and_mode(pitches, key):
    assert estimate_key(_melody(pitches)) == key


def test_to_common_key_moves_major_to_c_and_minor_to_a_by_the_smallest_shift():
    c_major = to_common_key(_melody(D_MAJOR))
    assert estimate_key(c_major) == (0, "major")
    assert note_table(c_major)["pitch"][0] == 60  # D4 -> C4: down 2, not up 10
    a_minor = to_common_key(_melody(E_MINOR))
    assert estimate_key(a_minor) == (9, "minor") and note_table(a_minor)["pitch"][0] == 69  # E4 -> A4: up 5


def test_a_score_without_pitched_notes_is_left_alone():
    empty = new_score(tpq=480)
    assert estimate_key(empty) is None and to_common_key(empty) is empty


def test_normalize_key_puts_every_bach_training_piece_in_c_major_or_a_minor():
    data = prepare_data(DataConfig(source="bach", representation="grid", window=32, limit=24, normalize_key=True),
                        "tokens")
    keys = {estimate_key(s) for s in data.scores["train"]}
    assert keys <= {(0, "major"), (9, "minor")}
    assert data.provenance["normalize_key"] is True
