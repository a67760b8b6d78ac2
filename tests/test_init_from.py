"""`tunesmith train --init-from CKPT` (trainer.init_from): a new run starts from another checkpoint's weights,
growing vocabulary rows for new tokens (training/init_from.py). Real runs of the debug LSTM on the MIT
fixtures, in the REMI `events` representation, then the same with bar countdown tokens added."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
import torch

from tunesmith import cli
from tunesmith.core.errors import UserError
from tunesmith.models.checkpoint import build_or_explain, load_model
from tunesmith.representations import get_representation
from tunesmith.training.init_from import grown_rows, initialise_from, row_sources

RECIPE = Path(__file__).parents[1] / "src" / "tunesmith" / "recipes" / "debug" / "lstm.yaml"
EVENTS = ["--set", "data.representation=events", "--set", "trainer.max_steps=2"]


def run_cli(argv: list[str], capsys, monkeypatch) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["tunesmith", *argv])
    try:
        cli.main()
        code = 0
    except SystemExit as error:
        code = error.code if isinstance(error.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def source_run(tmp_path_factory) -> Path:
    """A debug LSTM trained 2 steps on the fixtures as REMI events (no countdown tokens)."""
    from tunesmith.training.loop import train_command

    run_dir = tmp_path_factory.mktemp("init") / "source"
    return train_command(RECIPE, [a for a in EVENTS if a != "--set"], run_dir, None)


def test_row_sources_keep_known_tokens_and_seed_new_ones_from_their_kind():
    old, new = ["PAD_None", "Bar_None", "Pitch_60"], ["PAD_None", "Bar_3", "Bar_None", "Pitch_60", "X_1"]
    assert row_sources(old, new) == [0, 1, 1, 2, -1]
    weight = torch.arange(6.0).view(3, 2)
    rows = grown_rows(weight, row_sources(old, new), [False, True, False, False, True], 0.0, 0)
    assert rows.tolist() == [[0, 1], [2, 3], [2, 3], [4, 5], [2, 3]]  # X_1: the mean row
    jittered = grown_rows(weight, row_sources(old, new), [False, True, False, False, True], 0.5, 0)
    assert jittered[[0, 2, 3]].tolist() == rows[[0, 2, 3]].tolist()  # known tokens untouched, wherever they sit
    assert 0 < (jittered[[1, 4]] - rows[[1, 4]]).abs().max() < 5 * 0.5 * weight.std()


def test_countdown_tokens_grow_the_trained_rows(source_run):
    old = load_model(source_run)
    rep = get_representation("events", **{**dataclasses.asdict(old.representation.config), "countdown": 4})
    config = dataclasses.replace(old.model.config, vocab_size=rep.vocab_size)
    model = build_or_explain("lstm", config, "test")
    counts = initialise_from(model, "lstm", rep.vocab, str(source_run), noise=0.5, seed=0)
    assert counts["fresh"] == 0 and counts["grown"] >= 2 and counts["copied"] >= 4
    before, after = old.model.state_dict(), model.state_dict()
    vocab_rows = [name for name, w in after.items() if w.shape[0] == rep.vocab_size and w.shape != before[name].shape]
    old_index = {token: i for i, token in enumerate(old.representation.vocab)}
    for name in vocab_rows:
        for i, token in enumerate(rep.vocab):
            if token in old_index:  # every trained token keeps its trained row
                assert torch.equal(after[name][i], before[name][old_index[token]]), (name, token)
    out_rows = [name for name in vocab_rows if "embed" not in name]
    bar = old_index["Bar_None"]
    for name in out_rows:  # output rows of Bar_k start as Bar_None's, exactly
        assert torch.equal(after[name][rep.vocab.index("Bar_2")], before[name][bar])
    embed = next(name for name in vocab_rows if "embed" in name)
    gap = (after[embed][rep.vocab.index("Bar_2")] - before[embed][bar]).abs().max()
    assert 0 < gap < 5 * 0.5 * before[embed].std()  # jittered around Bar_None's input row
    same = {name for name in after if name not in vocab_rows}
    assert all(torch.equal(after[name], before[name]) for name in same)


def test_train_init_from_runs_end_to_end_and_records_its_source(source_run, tmp_path, capsys, monkeypatch):
    out = tmp_path / "grown"
    argv = ["train", str(RECIPE), "--out", str(out), "--init-from", str(source_run), *EVENTS,
            "--set", "data.representation_config.countdown=4"]
    code, _, err = run_cli(argv, capsys, monkeypatch)
    assert code == 0, err
    grown = load_model(out)
    assert grown.representation.config.countdown == 4
    assert grown.checkpoint["run_config"]["trainer"]["init_from"] == str(source_run)


@pytest.mark.parametrize("extra, message", [
    (["--init-from", "{tmp}/missing.ckpt"], "no checkpoint"),
    (["--init-from", "{source}", "--set", "model.name=gru"], "is a lstm checkpoint, the recipe trains a gru"),
    (["--init-from", "{source}", "--set", "data.representation=grid"], "lacks"),
    (["--init-from", "{source}", "--set", "model.config.hidden_size=24"], "only new vocabulary tokens"),
])
def test_a_source_that_does_not_fit_is_one_sentence_and_exit_2(extra, message, source_run, tmp_path, capsys,
                                                                monkeypatch):
    extra = [a.format(tmp=tmp_path, source=source_run) for a in extra]
    argv = ["train", str(RECIPE), "--out", str(tmp_path / "run"), "--set", "trainer.max_steps=1", *EVENTS, *extra]
    code, _, err = run_cli(argv, capsys, monkeypatch)
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_init_from_with_resume_is_refused(source_run, capsys, monkeypatch):
    code, _, err = run_cli(["train", "--resume", str(source_run), "--init-from", str(source_run)], capsys, monkeypatch)
    assert code == 2 and "starts a new run" in err


def test_initialise_from_refuses_a_checkpoint_that_provides_too_little(source_run, one_thread):
    old = load_model(source_run)
    config = dataclasses.replace(old.model.config, num_layers=8)  # six extra layers: most weights are fresh
    with pytest.raises(UserError, match="does not fit this model"):
        initialise_from(build_or_explain("lstm", config, "test"), "lstm", old.representation.vocab, str(source_run))


def test_a_family_rule_widens_weights_the_vocabulary_cannot_explain(source_run, one_thread, monkeypatch):
    """`MusicModel.grown_weight`: a family that knows how to widen a trained weight (zero-padded here) is
    asked before the shape difference is refused."""
    old = load_model(source_run)
    model = build_or_explain("lstm", dataclasses.replace(old.model.config, hidden_size=24), "test")

    def padded(name, weight, shape):
        grown = torch.zeros(shape, dtype=weight.dtype)
        grown[tuple(slice(0, n) for n in weight.shape)] = weight
        return grown

    monkeypatch.setattr(model, "grown_weight", padded)
    counts = initialise_from(model, "lstm", old.representation.vocab, str(source_run))
    assert counts["fresh"] == 0 and counts["grown"] > 0
    before, after = old.model.state_dict()["head.weight"], model.state_dict()["head.weight"]
    assert torch.equal(after[:, :16], before) and not after[:, 16:].any()
