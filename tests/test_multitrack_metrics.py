"""Multitrack metrics: golden values on a hand-built band, overlap on the MIT fixtures, the CLI report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from symusic import Score

from conftest import REALMIDI
from tunesmith.core.score import make_track, new_score
from tunesmith.data.sources import load_scores
from tunesmith.evaluation.multitrack_metrics import (
    group_metrics,
    multitrack_report,
    overlap_ceiling,
)
from tunesmith.evaluation.presence import (
    copy_primer_presence,
    presence_precision,
    presence_recall,
    presence_transitions,
)

MULTITRACK = REALMIDI / "miditok_tests" / "MIDIs_multitrack"
Q = 480  # ticks per quarter


def band(with_bass: bool = True) -> Score:
    """Two 4/4 bars: piano C4 E4 (quarters) + G4 (a 64th) in bar 1, a bass C2 over both bars, four
    drum hits in bar 1 (three on the 16th grid, one off it)."""
    score = new_score(tpq=Q)
    score.tracks.append(make_track([60, 64, 67], [0, Q, 2 * Q], [Q, Q, Q // 16], program=0))
    if with_bass:
        score.tracks.append(make_track([36], [0], [8 * Q], program=33))
    score.tracks.append(make_track([36, 38, 42, 42], [0, Q // 2, Q, 130], [1, 1, 1, 1], is_drum=True))
    return score


def test_per_group_values_follow_the_musegan_definitions():
    m = group_metrics(band())
    assert m["piano/empty_bar_rate"] == 0.5 and m["bass/empty_bar_rate"] == 0.0
    assert m["guitar/empty_bar_rate"] == 1.0 and math.isnan(m["guitar/used_pitch_classes_per_bar"])
    assert m["piano/used_pitch_classes_per_bar"] == 3.0 and m["bass/used_pitch_classes_per_bar"] == 1.0
    assert m["piano/qualified_note_rate"] == pytest.approx(2 / 3)  # the 64th note is not qualified
    assert m["drums/empty_bar_rate"] == 0.5 and m["drums/drum_pattern_rate"] == 0.75
    # chroma C:E:G = 480:480:30 ticks against C: |T p - T b| with Harte's 6 x 12 T, in the bar both play
    assert m["tonal_distance/piano-bass"] == pytest.approx(0.96176, abs=1e-4)
    assert math.isnan(m["tonal_distance/piano-guitar"])


def test_presence_recall_counts_bars_where_the_reference_plays():
    recall = presence_recall([band(with_bass=False)], [band()])
    assert recall["piano"] == 1.0 and recall["drums"] == 1.0 and recall["bass"] == 0.0
    assert math.isnan(recall["guitar"])


def test_presence_recall_splits_parts_the_primer_has_from_parts_that_enter_later():
    # bar 1 is the primer; the reference's bass plays there and on, its guitar enters in bar 2
    reference, generated = band(), band(with_bass=False)
    for score in (reference, generated):
        score.tracks.append(make_track([52], [4 * Q], [Q], program=25))
    primed = presence_recall([generated], [reference], skip_bars=1, primed=True)
    entering = presence_recall([generated], [reference], skip_bars=1, primed=False)
    everything = presence_recall([generated], [reference], skip_bars=1)
    assert primed["bass"] == 0.0 and math.isnan(primed["guitar"])
    assert entering["guitar"] == 1.0 and math.isnan(entering["bass"])
    assert everything["bass"] == 0.0 and everything["guitar"] == 1.0


def test_presence_precision_counts_bars_where_the_generated_piece_plays():
    # the generated piece has bass in both bars, the reference none: recall undefined, precision 0
    precision = presence_precision([band()], [band(with_bass=False)])
    recall = presence_recall([band()], [band(with_bass=False)])
    assert precision["bass"] == 0.0 and math.isnan(recall["bass"])
    assert precision["piano"] == 1.0 and math.isnan(precision["guitar"])
    # a piano that plays in bar 2 too, where the reference's piano rests: recall 1, precision 1/2
    full = band()
    full.tracks[0].notes.append(make_track([62], [4 * Q], [Q], program=0).notes[0])
    assert presence_recall([full], [band()])["piano"] == 1.0
    assert presence_precision([full], [band()])["piano"] == 0.5


def test_copying_the_primer_plays_each_part_it_hears_in_every_new_bar():
    # primer = bar 1 (piano, bass, drums); bar 2 has only the bass
    figures = copy_primer_presence([band()], skip_bars=1)
    assert figures["recall"]["bass"] == 1.0 and math.isnan(figures["recall"]["piano"])
    assert figures["precision"]["bass"] == 1.0 and figures["precision"]["piano"] == 0.0
    assert figures["precision"]["drums"] == 0.0 and math.isnan(figures["precision"]["guitar"])


def test_transitions_count_stops_and_entries_between_two_bar_windows():
    # 8 bars: piano in bars 1-4 and 7-8 (windows: plays, plays, rests, plays), bass throughout
    score = new_score(tpq=Q)
    score.tracks.append(make_track([60] * 6, [b * 4 * Q for b in (0, 1, 2, 3, 6, 7)], [Q] * 6, program=0))
    score.tracks.append(make_track([36] * 8, [b * 4 * Q for b in range(8)], [Q] * 8, program=33))
    moves = presence_transitions([score], first_bar=2)
    assert moves["stop"]["piano"] == 0.5 and moves["enter"]["piano"] == 1.0
    assert moves["stop"]["bass"] == 0.0 and math.isnan(moves["enter"]["bass"])
    assert math.isnan(moves["stop"]["guitar"]) and moves["enter"]["guitar"] == 0.0
    # from bar 4 on only the windows rests -> plays are counted
    later = presence_transitions([score], first_bar=6)
    assert math.isnan(later["stop"]["piano"]) and later["enter"]["piano"] == 1.0


def test_real_music_overlaps_real_music_and_a_broken_set_does_not():
    real = [s for _, s in load_scores(MULTITRACK)]
    ceiling = overlap_ceiling(real)
    assert set(ceiling) >= {"piano", "bass", "drums", "tonal_distance"}
    report = multitrack_report([band(), band(with_bass=False)] * 3, real)
    assert "guitar" not in report["overlap_area"]  # a group the set never plays is not scored as a match
    assert report["overlap_area"]["drums"] < ceiling["drums"] - 0.1  # four hits are not a real drum part
    assert 0 < report["reference"]["bass/used_pitch_classes_per_bar"] <= 12


def test_evaluate_writes_the_multitrack_report_for_multitrack_sets(tmp_path):
    from typer.testing import CliRunner

    from tunesmith.cli import app

    generated = tmp_path / "gen"
    generated.mkdir()
    for i, score in enumerate([band(), band(with_bass=False), band()]):
        score.dump_midi(str(generated / f"piece_{i}.mid"))
    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["evaluate", str(generated), "--reference", str(MULTITRACK), "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.multitrack.json").read_text())
    assert report["n_generated"] == 3 and "drums/drum_pattern_rate" in report["generated"]
    assert set(report["overlap_area_real_vs_real"]) >= {"piano", "bass"}


def test_the_benchmark_page_renders_from_its_committed_figures():
    # benchmarks/multitrack.py's report() from the shipped band-5's results: the page a reader opens
    import importlib.util

    root = Path(__file__).parents[1] / "benchmarks"
    spec = importlib.util.spec_from_file_location("multitrack_benchmark", root / "multitrack.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    figures = json.loads((root / "results" / "multitrack.json").read_text())
    page = bench.report(figures)
    assert page == (root / "results" / "multitrack.md").read_text()
    primed = next(line for line in page.splitlines() if line.startswith("| recall where the primer has the part"))
    assert [float(cell.strip(" %")) >= 80 for cell in primed.split("|")[2:-1]] == [True] * 5
