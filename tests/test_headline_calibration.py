"""The headline of `evaluate` / `compare` (issue 11): OA over the features that separate real music from
random notes, with the reference's real-vs-real ceiling and random-notes floor beside it.

Real music: 40 Bach chorales (tests/fixtures/bach40, see its LICENCE-NOTE.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from symusic import Score
from typer.testing import CliRunner

from tunesmith.cli import app, main
from tunesmith.core.score import bar_starts, note_table
from tunesmith.evaluation.calibration import calibrate, random_like
from tunesmith.evaluation.compare import compare_sets

BACH40 = Path(__file__).parent / "fixtures" / "bach40"


@pytest.fixture(scope="module")
def chorales() -> list[Score]:
    return [Score.from_file(str(f), format="midi") for f in sorted(BACH40.glob("*.mid"))]


@pytest.fixture(scope="module")
def calibration(chorales):
    return calibrate(chorales[:24])


def test_random_like_has_the_references_range_and_density(chorales):
    randoms = random_like(chorales, 6, seed=1)
    pitches = np.concatenate([note_table(s)["pitch"] for s in chorales])
    low, high = np.percentile(pitches, [5, 95])
    got = np.concatenate([note_table(s)["pitch"] for s in randoms])
    assert low <= got.min() and got.max() <= high
    real_density = np.median([s.note_num() / len(bar_starts(s)) for s in chorales])
    random_density = np.median([s.note_num() / len(bar_starts(s)) for s in randoms])
    assert 0.7 < random_density / real_density < 1.3
    assert len({tuple(note_table(s)["pitch"][:8]) for s in randoms}) == 6  # every piece differs


def test_ceiling_is_far_above_the_floor_and_saturated_features_are_left_out(calibration):
    summary = calibration.summary()
    assert summary["ceiling_oa"] > 0.85 and summary["floor_oa"] < 0.6
    assert summary["ceiling_oa"] - summary["floor_oa"] > 0.3
    # random notes on an 8th grid are all "qualified" notes: that feature cannot separate them
    assert "qualified_note_rate" not in calibration.separating
    assert {"pitch_range", "used_pitch_classes"} & calibration.separating


def test_headline_ranks_real_above_random(chorales, calibration):
    real = calibration.headline(compare_sets(chorales[:24:2], chorales[24:]))
    noise = calibration.headline(compare_sets(chorales[:24:2], random_like(chorales, 12, seed=7)))
    assert real.oa > 0.8 > 0.6 > noise.oa
    assert noise.weakest in calibration.separating


def test_too_small_a_reference_is_not_calibrated(chorales):
    assert calibrate(chorales[:3]) is None


def test_evaluate_reports_ceiling_and_floor(tmp_path, chorales):
    generated = tmp_path / "gen"
    generated.mkdir()
    for i, score in enumerate(random_like(chorales, 4, seed=3)):
        score.dump_midi(str(generated / f"piece-{i}.mid"))
    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["evaluate", str(generated), "--reference", str(BACH40), "--limit", "16",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "features that separate real music from random notes" in result.output
    calibration = json.loads(out.read_text())["calibration"]
    assert calibration["ceiling_oa"] > calibration["headline_oa"]  # random pieces sit below real-vs-real
    html = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["evaluate", str(generated), "--reference", str(BACH40), "--limit", "16",
                                      "--out", str(html)])
    assert result.exit_code == 0, result.output
    assert "real-vs-real ceiling" in html.read_text() and "random-notes floor" in html.read_text()


def test_bars_cuts_both_sets_and_a_length_mismatch_is_named(tmp_path, chorales, monkeypatch, capsys):
    from tunesmith.core.score import bars_after

    generated = tmp_path / "short"
    generated.mkdir()
    for i, score in enumerate(random_like(chorales, 4, seed=5)):
        bars_after(score, 2).dump_midi(str(generated / f"piece-{i}.mid"))
    out = tmp_path / "r.json"
    args = ["evaluate", str(generated), "--reference", str(BACH40), "--limit", "12", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0 and "add --bars 2" in result.output  # 2-bar pieces vs whole chorales
    result = CliRunner().invoke(app, [*args, "--bars", "2"])
    assert result.exit_code == 0 and "add --bars" not in result.output
    assert json.loads(out.read_text())["comparison"]["n_reference"] == 12
    monkeypatch.setattr("sys.argv", ["tunesmith", *args, "--bars", "500"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2 and "have 500 bars" in capsys.readouterr().err


def test_a_transposition_augmented_model_is_measured_in_one_key(chorales):
    from tunesmith.core.score import transpose
    from tunesmith.data.augment import estimate_key
    from tunesmith.evaluation.provenance import generated_in_model_terms, key_normalised
    from tunesmith.evaluation.runs import PieceSet

    shifted = PieceSet("gen", ["a", "b"], [transpose(chorales[0], 2), transpose(chorales[1], -1)])
    augmented = {"training_data": {"transpose": 2}}
    assert key_normalised(augmented) and not key_normalised({"training_data": {"transpose": 0}})
    moved = generated_in_model_terms(shifted, augmented)
    assert [estimate_key(s)[0] for s in moved.scores] in ([0, 0], [9, 9], [0, 9], [9, 0])
    assert generated_in_model_terms(shifted, {"training_data": {"normalize_key": True}}) is shifted  # already C/Am
    assert generated_in_model_terms(shifted, None) is shifted
