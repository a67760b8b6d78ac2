"""`tunesmith generate` end to end with the shipped models: exact lengths, primer context, the provenance
sidecar and what `evaluate` does with it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from symusic import Score

from cli_run import run_cli
from tunesmith.core.score import bar_starts, last_bars
from tunesmith.evaluation.provenance import read_sidecar, reference_in_model_terms
from tunesmith.evaluation.runs import load_set
from tunesmith.io.midi import read_midi
from tunesmith.models.checkpoint import file_hash, resolve_checkpoint

BACH40 = Path(__file__).parent / "fixtures" / "bach40"
PRIMER = BACH40 / "chorale_04_5.mid"


def bars_of(path: Path) -> int:
    return len(bar_starts(Score(str(path))))


@pytest.mark.parametrize("name", ["lstm-bach", "jsb-best", "midinet"])
def test_shipped_models_write_exactly_the_bars_asked(name, tmp_path, monkeypatch, capsys):
    code, out, err = run_cli(monkeypatch, capsys, "generate", name, "--out", str(tmp_path), "--n", "3",
                             "--bars", "3", "--seed", "4")
    assert code == 0, err
    midis = sorted(tmp_path.glob("sample_*.mid"))
    assert len(midis) == 3 and all(bars_of(m) == 3 for m in midis)


def test_primer_context_is_cut_to_its_last_bars_and_continued(tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, "generate", "jsb-best", "--out", str(tmp_path), "--n", "1",
                           "--bars", "2", "--primer", str(PRIMER), "--primer-bars", "3")
    assert code == 0, err
    context = last_bars(read_midi(PRIMER), 3)
    assert len(bar_starts(context)) == 3 < len(bar_starts(read_midi(PRIMER)))
    assert bars_of(tmp_path / "sample_01.mid") == 3 + 2


def test_the_sidecar_says_what_made_the_files(tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, "generate", "lstm-bach", "--out", str(tmp_path), "--n", "2",
                           "--bars", "1", "--temperature", "0.8", "--top-k", "20", "--seed", "9")
    assert code == 0, err
    record = read_sidecar(tmp_path)
    assert record["checkpoint"]["blake2b"] == file_hash(resolve_checkpoint("lstm-bach"))
    assert record["model"]["name"] == "lstm" and record["representation"]["name"] == "events"
    assert record["options"]["seed"] == 9 and record["options"]["sampling"] == {
        "temperature": 0.8, "top_k": 20, "top_p": None, "greedy": False, "min_p": None}
    assert record["files"] == ["sample_01.mid", "sample_02.mid"]
    assert json.loads((tmp_path / "generation.json").read_text()) == record


def test_the_reference_is_measured_as_the_models_representation_holds_it():
    reference = load_set(BACH40, limit=4)
    melody = {"representation": {"name": "grid", "config": {}, "state": {}}}
    reduced = reference_in_model_terms(reference, melody)
    assert len(reduced.scores) == 4 and "as grid" in reduced.name
    assert all(len(s.tracks) == 1 for s in reduced.scores)  # the chorales' skyline melody
    assert sum(s.note_num() for s in reduced.scores) < sum(s.note_num() for s in reference.scores)
    assert reference_in_model_terms(reference, {}) is reference


@pytest.mark.parametrize("args,message", [
    (["generate", "jsb-best", "--top-k", "3"], "does not support --top-k"),
    (["generate", "lstm-bach", "--chords", "C G"], "does not support --chords"),
    (["generate", "midinet", "--steps", "4"], "use --bars"),
    (["generate", "lstm-bach", "--n", "5000"], "--no-limits"),
    (["generate", "lstm-bach", "--primer-bars", "2"], "needs --primer"),
    (["generate", "lstm-bach", "--temperature", "inf"], "finite"),
    (["generate", "lstm-bach", "--seed", str(2**70)], "--seed"),
])
def test_bad_generation_options_are_one_sentence_and_exit_2(args, message, tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, *args, "--out", str(tmp_path / "out"))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("name,unit", [("jsb-best", "nats per frame, exact"), ("lstm-bach", "nats per token, exact")])
def test_evaluate_reports_nll_under_every_likelihood_checkpoint(name, unit, tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, "generate", name, "--out", str(tmp_path / "gen"), "--n", "2",
                           "--bars", "2")
    assert code == 0, err
    code, out, err = run_cli(monkeypatch, capsys, "evaluate", str(tmp_path / "gen"), "--reference", str(BACH40),
                             "--limit", "6", "--checkpoint", name, "--out", str(tmp_path / "r.json"))
    assert code == 0, err
    assert f"NLL under {name} ({unit})" in out
    nll = json.loads((tmp_path / "r.json").read_text())["comparison"]["nll"]
    assert 0 < nll["reference"] < 50 and 0 < nll["generated"] < 50


def test_evaluate_with_a_checkpoint_without_likelihood_is_one_sentence(tmp_path, monkeypatch, capsys):
    run_cli(monkeypatch, capsys, "generate", "lstm-bach", "--out", str(tmp_path / "gen"), "--n", "2", "--bars", "1")
    code, _, err = run_cli(monkeypatch, capsys, "evaluate", str(tmp_path / "gen"), "--reference", str(BACH40),
                           "--limit", "4", "--checkpoint", "midinet", "--out", str(tmp_path / "r.json"))
    assert code == 2 and "defines no likelihood" in err and len(err.strip().splitlines()) == 1
