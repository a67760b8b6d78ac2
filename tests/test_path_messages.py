"""The sentence a user gets for a wrong path says what is wrong with it (a folder is not "missing")."""

from __future__ import annotations

from cli_run import run_cli


def test_a_folder_given_as_primer_is_named_a_folder(tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, "generate", "lstm-bach", "--out", str(tmp_path / "g"),
                           "--primer", str(tmp_path))
    assert code == 2 and "is a folder; give a file" in err and "does not exist" not in err


def test_a_missing_recipe_and_a_folder_recipe_differ(tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, "train", str(tmp_path / "nope.yaml"))
    assert code == 2 and "does not exist" in err
    code, _, err = run_cli(monkeypatch, capsys, "train", str(tmp_path))
    assert code == 2 and "is a folder" in err


def test_a_text_file_as_checkpoint_is_not_a_pytorch_file(tmp_path, monkeypatch, capsys):
    text = tmp_path / "notes.ckpt"
    text.write_text("hello\n")
    code, _, err = run_cli(monkeypatch, capsys, "generate", str(text), "--out", str(tmp_path / "g"))
    assert code == 2 and "not a PyTorch checkpoint file" in err and "KeyError" not in err


def test_a_cut_checkpoint_is_named_damaged(tmp_path, monkeypatch, capsys):
    from tunesmith.models.checkpoint import resolve_checkpoint

    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(resolve_checkpoint("bach-vae").read_bytes()[:4096])
    code, _, err = run_cli(monkeypatch, capsys, "generate", str(cut), "--out", str(tmp_path / "g"))
    assert code == 2 and "damaged or cut short" in err
    assert not (tmp_path / "g").exists()
