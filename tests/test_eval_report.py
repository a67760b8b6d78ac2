"""Reports and commands: the HTML is one self-contained file (parsed here), the JSON is strict, the
comparison table marks the best model per column, and `tunesmith evaluate` / `compare` run end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tunesmith.cli import app
from tunesmith.core.errors import UserError
from tunesmith.core.score import make_track, new_score
from tunesmith.evaluation import plots
from tunesmith.evaluation.report import write_comparison, write_evaluation
from tunesmith.evaluation.runs import evaluate_runs, evaluate_set, load_run, load_set
from tunesmith.evaluation.tables import Column, best_rows, comparison_table

BACH40 = Path(__file__).parent / "fixtures" / "bach40"


class Page(HTMLParser):
    """Collects tags, their attributes and the text of table cells."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def count(self, tag: str) -> int:
        return sum(1 for t, _ in self.tags if t == tag)


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _write_wav(path: Path) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(np.zeros(800, np.int16).tobytes())


def _run_folder(root: Path, name: str, seed: int, copies: int = 0) -> Path:
    """A run folder: samples/ with random pieces (and `copies` chorales), a WAV beside the first piece,
    and a metrics.csv."""
    samples = root / name / "samples"
    samples.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(4):
        score = new_score(tpq=480)
        start = np.sort(rng.integers(0, 64, 60)) * 240
        score.tracks.append(make_track(rng.integers(48, 80, 60), start, [240] * 60))
        score.dump_midi(str(samples / f"piece{i}.mid"))
    for chorale in sorted(BACH40.glob("*.mid"))[:copies]:
        (samples / chorale.name).write_bytes(chorale.read_bytes())
    _write_wav(samples / "piece0.wav")
    rows = ["step,epoch,split,name,value"] + [f"{s},0,{split},loss,{3 - s / 100}" for s in range(0, 50, 10)
                                               for split in ("train", "valid")]
    (root / name / "metrics.csv").write_text("\n".join(rows) + "\n")
    return root / name


@pytest.fixture(scope="module")
def reference():
    return load_set(BACH40, limit=12)


def assert_self_contained(page: Page) -> None:
    assert not any(tag in ("script", "link", "iframe") for tag, _ in page.tags)
    for _, attrs in page.tags:
        for key in ("src", "href"):
            if key in attrs:
                assert attrs[key].startswith(("data:", "#")), attrs[key][:60]
    assert "http" not in "".join(v or "" for _, attrs in page.tags for v in attrs.values())


def test_evaluation_html_is_self_contained(tmp_path, reference):
    run = load_run(_run_folder(tmp_path, "lstm", seed=0))
    result = evaluate_set(run, reference)
    out = write_evaluation(result, reference, tmp_path / "report.html")
    page = parse(out)
    assert_self_contained(page)
    assert page.count("table") == 3  # summary, features, memorization
    images = [a["src"] for t, a in page.tags if t == "img"]
    # 3 generated + 2 reference piano rolls, one figure per feature, the learning curves
    assert len(images) == 5 + len(result.comparison.features) + 1
    assert all(src.startswith("data:image/png;base64,") for src in images)
    audio = [a["src"] for t, a in page.tags if t == "audio"]
    assert len(audio) == 1 and audio[0].startswith("data:audio/wav;base64,")
    text = " ".join(page.text)
    assert "pitch_class_entropy" in text and "Memorization" in text and "PCH KL" in text


def test_evaluation_json_is_strict(tmp_path, reference):
    run = load_run(_run_folder(tmp_path, "gan", seed=1, copies=2))
    out = write_evaluation(evaluate_set(run, reference), reference, tmp_path / "report.json")
    data = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert data["memorization"]["copies"] == 2 and data["memorization"]["n_pieces"] == 6
    assert {f["name"] for f in data["comparison"]["features"]} >= {"polyphony", "groove_consistency"}
    assert data["metrics_csv"].endswith("metrics.csv")


def test_best_per_column():
    assert best_rows(Column("a", "a", "max"), [0.2, 0.9, None, 0.9]) == {1, 3}
    assert best_rows(Column("b", "b", "min"), [3, 1, 2]) == {1}
    assert best_rows(Column("c", "c", "closest", target=5.0), [1.0, 6.5, 4.0]) == {2}
    assert best_rows(Column("d", "d", "min"), [None, None]) == set()


def test_comparison_report(tmp_path, reference):
    runs = [load_run(_run_folder(tmp_path, "good", seed=2, copies=0)),
            load_run(_run_folder(tmp_path, "copycat", seed=3, copies=3))]
    results = evaluate_runs(runs, reference)
    table = comparison_table([r.summary() for r in results])
    names = [row["name"] for row in table["rows"]]
    assert names == ["good", "copycat"]
    assert table["best"]["copies"] == [0]
    assert any(c["key"] == "oa:pitch_class_entropy" for c in table["columns"])
    page = parse(write_comparison(results, reference, tmp_path / "compare.html"))
    assert_self_contained(page)
    cells = [a.get("class") for t, a in page.tags if t == "td"]
    assert cells.count("best") >= len(table["columns"])
    data = json.loads(write_comparison(results, reference, tmp_path / "compare.json").read_text())
    assert data["table"]["best"] == table["best"]


def test_plots_without_io_plot(tmp_path):
    score = new_score(tpq=4)
    score.tracks.append(make_track([60, 64], [0, 4], [4, 8]))
    assert plots.simple_piano_roll_png(score, "x").startswith(b"\x89PNG")
    csv = tmp_path / "metrics.csv"
    csv.write_text("step,epoch,split,name,value\n0,0,train,loss,2.0\n10,0,train,loss,1.5\n10,0,valid,acc,0.5\n10,0")
    series = plots.read_metrics_csv(csv)  # the half-written last line is skipped
    assert series[("train", "loss")][1].tolist() == [2.0, 1.5]
    assert plots.learning_curves_png(csv).startswith(b"\x89PNG")


def test_cli_evaluate_and_compare(tmp_path):
    run_a, run_b = _run_folder(tmp_path, "a", seed=4), _run_folder(tmp_path, "b", seed=5, copies=1)
    runner = CliRunner()
    out = tmp_path / "eval.json"
    result = runner.invoke(app, ["evaluate", str(run_a), "--reference", str(BACH40), "--limit", "8",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "mean overlapping area" in result.output and json.loads(out.read_text())["name"] == "a"
    result = runner.invoke(app, ["compare", str(run_a), str(run_b / "samples"), "--reference", str(BACH40),
                                 "--limit", "8", "--out", str(tmp_path / "cmp.html")])
    assert result.exit_code == 0, result.output
    assert "b against bach40: overlapping area" in result.output and (tmp_path / "cmp.html").stat().st_size > 10_000
    result = runner.invoke(app, ["evaluate", str(run_a), "--reference", str(BACH40), "--out", "r.txt"])
    assert isinstance(result.exception, UserError)


def test_cli_bad_input_is_one_sentence_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tunesmith.cli", "evaluate", str(tmp_path / "missing"),
                           "--reference", str(BACH40)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:") and len(proc.stderr.strip().splitlines()) == 1


def test_evaluation_never_imports_torch():
    code = ("import sys; import tunesmith.evaluation.report, tunesmith.evaluation.runs, "
            "tunesmith.evaluation.provenance; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_one_reference_piece_is_not_enough(reference):
    one = load_set(BACH40, limit=1)
    with pytest.raises(UserError, match="at least 2"):
        evaluate_set(one, one)
