"""Calibration on real music (issue 6): real against real scores near 1, random notes score clearly worse,
copies of training pieces are flagged.

The real music is 40 distinct Bach chorales (tests/fixtures/bach40, see its LICENCE-NOTE.md), split into
even- and odd-numbered halves of 20. Thresholds, with the values measured when they were set:
- real vs real: mean overlapping area > 0.85 (0.92), every feature > 0.7 (lowest 0.82), PCH KL < 0.1
  (0.039), no copy flags (longest span shared by two different chorales: 17 notes; flags start at 40);
- random notes: mean overlapping area < 0.6 (0.52) and at least 0.3 below real vs real, PCH KL 0.23;
- copies, transposed copies and a half-copied piece are all flagged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from symusic import Score

from tunesmith.core.score import make_track, new_score, transpose, trim
from tunesmith.evaluation.compare import compare_sets
from tunesmith.evaluation.memorization import build_index, check_set

BACH40 = Path(__file__).parent / "fixtures" / "bach40"


@pytest.fixture(scope="session")
def chorales() -> list[Score]:
    files = sorted(BACH40.glob("*.mid"))
    assert len(files) == 40
    return [Score.from_file(str(f), format="midi") for f in files]


@pytest.fixture(scope="session")
def halves(chorales):
    return chorales[0::2], chorales[1::2]


@pytest.fixture(scope="session")
def real_vs_real(halves):
    return compare_sets(*halves)


def random_notes(n_pieces: int, seed: int = 0) -> list[Score]:
    """Pieces of about a chorale's size and range: 250 notes, uniform pitches 40-80, on an 8th grid."""
    rng = np.random.default_rng(seed)
    pieces = []
    for _ in range(n_pieces):
        score = new_score(tpq=480, time_signature=(4, 4))
        start = np.sort(rng.integers(0, 128, 250)) * 240
        score.tracks.append(make_track(rng.integers(40, 81, 250), start, rng.integers(1, 5, 250) * 240))
        pieces.append(score)
    return pieces


def test_real_against_real_overlaps(real_vs_real):
    areas = {f.name: f.overlap_area for f in real_vs_real.features if not np.isnan(f.overlap_area)}
    assert len(areas) >= 17  # drum pattern is undefined for chorales; everything else is measured
    assert real_vs_real.mean_overlap_area > 0.85
    assert min(areas.values()) > 0.7, areas
    assert real_vs_real.pitch_class_kl["whole"] < 0.1  # 0.039; random notes: 0.23


def test_random_notes_score_clearly_worse(halves, real_vs_real):
    random_set = compare_sets(halves[0], random_notes(20))
    assert random_set.mean_overlap_area < 0.6
    assert real_vs_real.mean_overlap_area - random_set.mean_overlap_area > 0.3
    assert random_set.mean_kl_divergence > 10 * real_vs_real.mean_kl_divergence
    assert random_set.pitch_class_kl["whole"] > 2 * real_vs_real.pitch_class_kl["whole"]


def test_no_copies_between_different_chorales(halves):
    train, other = halves
    results = check_set(build_index(train), other)
    assert not any(r.copied for r in results)
    assert max(r.longest_span_notes for r in results) < 25


def test_copies_of_training_pieces_are_flagged(halves):
    train, _ = halves
    index = build_index(train, [f"train{i}" for i in range(len(train))])
    end = int(train[5].end())
    noise = random_notes(1, seed=1)[0].resample(train[5].ticks_per_quarter, min_dur=1)
    random_tail = trim(noise, 0, end // 2)
    half_copy = trim(train[5], 0, end // 2)
    for source, target in zip(random_tail.tracks, half_copy.tracks, strict=False):
        target.notes.extend([n.shift_time(end // 2) for n in source.notes])
    copies = [train[0], transpose(train[1], 5), transpose(train[2], -3), half_copy]
    results = check_set(index, copies + random_notes(4, seed=2))
    assert [r.copied for r in results] == [True] * 4 + [False] * 4
    assert [r.nearest for r in results[:4]] == ["train0", "train1", "train2", "train5"]
