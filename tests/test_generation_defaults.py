"""Sampling defaults stored in a checkpoint (issue 11: "sampling settings chosen on validation"): used when
the user asks for no sampling option, replaced entirely by any option the user gives, recorded in the
sidecar, and checked when stored."""

from __future__ import annotations

import json
import shutil

import pytest

from cli_run import run_cli
from tunesmith.core.errors import UserError
from tunesmith.models.checkpoint import load_model, resolve_checkpoint, set_generation_defaults


@pytest.fixture()
def checkpoint(tmp_path):
    path = tmp_path / "mine.ckpt"
    shutil.copy(resolve_checkpoint("lstm-bach"), path)
    set_generation_defaults(path, temperature=None, top_p=None)  # start from none, whatever is shipped
    return path


def sampling_of(folder) -> dict:
    return json.loads((folder / "generation.json").read_text())["options"]["sampling"]


def test_defaults_apply_when_no_option_is_given(checkpoint, tmp_path, monkeypatch, capsys):
    set_generation_defaults(checkpoint, temperature=0.9)
    assert load_model(checkpoint).sampling_defaults == {"temperature": 0.9}
    args = ["--n", "2", "--bars", "2", "--seed", "5"]
    assert run_cli(monkeypatch, capsys, "generate", str(checkpoint), "--out", str(tmp_path / "a"), *args)[0] == 0
    assert run_cli(monkeypatch, capsys, "generate", str(checkpoint), "--out", str(tmp_path / "b"), *args,
                   "--temperature", "0.9")[0] == 0
    assert sampling_of(tmp_path / "a")["temperature"] == 0.9
    pieces = sorted(p.name for p in (tmp_path / "a").glob("*.mid"))
    assert len(pieces) == 2  # the same draws as asking for 0.9 explicitly
    assert all((tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes() for n in pieces)


def test_any_user_option_replaces_the_defaults(checkpoint, tmp_path, monkeypatch, capsys):
    set_generation_defaults(checkpoint, temperature=0.5)
    code, _, err = run_cli(monkeypatch, capsys, "generate", str(checkpoint), "--out", str(tmp_path / "c"),
                           "--n", "1", "--bars", "1", "--top-p", "0.9")
    assert code == 0, err
    assert sampling_of(tmp_path / "c")["temperature"] is None and sampling_of(tmp_path / "c")["top_p"] == 0.9


@pytest.mark.parametrize("bad, says", [
    ({"temperature": -1.0}, "--temperature"),
    ({"min_p": 2.0}, "--min-p"),
    ({"beam": 4}, "not a sampling option"),
])
def test_bad_defaults_are_refused(checkpoint, bad, says):
    with pytest.raises(UserError, match=says):
        set_generation_defaults(checkpoint, **bad)
    assert load_model(checkpoint).sampling_defaults == {}


def test_defaults_a_family_does_not_honour_are_refused(tmp_path):
    path = tmp_path / "roll.ckpt"
    shutil.copy(resolve_checkpoint("jsb-best"), path)
    with pytest.raises(UserError, match="does not support"):
        set_generation_defaults(path, top_k=5)
