"""`--ending model` (issue 11, item 2): pieces end where the model expects the end, on a bar line."""

from __future__ import annotations

import pytest
import torch
from symusic import Score

from cli_run import run_cli
from tunesmith.core.score import bar_starts
from tunesmith.generation.endings import EndingWatch, extra_bars


def test_watch_keeps_the_likeliest_end_after_the_minimum_length():
    watch = EndingWatch(None, eos_id=2, batch=2)
    logits = torch.zeros(2, 4)
    for step, (eos_a, eos_b) in enumerate([(9.0, 9.0), (1.0, 3.0), (4.0, 0.5), (2.0, 2.0)]):
        if step == 1:
            watch.ready[:] = True  # the first step (before the minimum length) must not count
        logits[:, 2] = torch.tensor([eos_a, eos_b])
        watch.observe(logits)
        watch.update(torch.tensor([0, 1]))
    assert watch.best_step.tolist() == [2, 1]
    assert watch.ends([[5, 6, 7, 8], [5, 6, 7, 8]]) == [[5, 6], [5]]


def test_model_endings_fall_on_bar_lines_between_the_minimum_and_the_maximum(tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, "generate", "lstm-bach", "--out", str(tmp_path), "--n", "3",
                           "--bars", "2", "--ending", "model", "--seed", "3")
    assert code == 0, err
    for path in sorted(tmp_path.glob("sample_*.mid")):
        score = Score(str(path))
        bars = bar_starts(score)
        assert 2 <= len(bars) <= 2 + extra_bars(2)
        bar = 4 * score.ticks_per_quarter
        assert score.end() % bar == 0 and score.end() >= 2 * bar  # ends on a bar line
    assert '"ending": "model"' in (tmp_path / "generation.json").read_text()


@pytest.mark.parametrize("args, says", [
    (["jsb-best", "--ending", "model"], "needs a token family"),
    (["lstm-bach", "--ending", "model", "--steps", "10"], "does not go with --steps"),
    (["lstm-bach", "--ending", "chorus"], "--ending must be one of bars, model"),
])
def test_wrong_endings_are_one_sentence(args, says, tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, "generate", *args, "--out", str(tmp_path), "--n", "1")
    assert code == 2 and says in err and "Traceback" not in err
    assert not list(tmp_path.glob("*.mid"))
