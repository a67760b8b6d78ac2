"""Recipe validation at the edge: every bad value, file or override is one UserError sentence that names
the key, the value and what is allowed; every shipped recipe still parses."""

from __future__ import annotations

import os

import pytest
import yaml

from tunesmith.core.errors import UserError
from tunesmith.resources import recipe_dirs
from tunesmith.training import config as config_module
from tunesmith.training.config import check_device, dump_config, load_config, parse_config

RECIPES = sorted({p.resolve() for folder in recipe_dirs() for p in folder.rglob("*.yaml")})

# (section.key, bad value, words the message must contain)
BAD_VALUES = [
    ("optim.lr", -1, "greater than 0"),
    ("optim.lr", 0, "greater than 0"),
    ("optim.lr", float("nan"), "finite"),
    ("optim.lr", float("inf"), "finite"),
    ("optim.lr", "fast", "a number"),
    ("optim.weight_decay", -0.1, "at least 0"),
    ("optim.betas", [2, 3], "less than 1"),
    ("optim.betas", [-0.1, 0.9], "at least 0"),
    ("optim.betas", [0.9], "list of 2 values"),
    ("optim.betas", [0.9, 0.9, 0.9], "at most 2"),
    ("optim.grad_clip", -1, "greater than 0 (or null)"),
    ("optim.grad_clip", 0, "greater than 0"),
    ("optim.batch_size", 0, "at least 1"),
    ("optim.batch_size", -1, "at least 1"),
    ("optim.batch_size", 2.5, "whole number"),
    ("optim.batch_size", True, "not true or false"),
    ("optim.lr_decay", 0, "greater than 0"),
    ("optim.lr_decay", 1.5, "at most 1"),
    ("trainer.max_epochs", 0, "at least 1"),
    ("trainer.max_epochs", -1, "at least 1"),
    ("trainer.max_steps", -1, "at least 1 (or null)"),
    ("trainer.max_steps", 0, "at least 1"),
    ("trainer.max_minutes", -1, "greater than 0 (or null)"),
    ("trainer.max_minutes", 0, "greater than 0"),
    ("trainer.checkpoint_every", 0, "at least 1"),
    ("trainer.log_every", 0, "at least 1"),
    ("trainer.valid_batches", 0, "at least 1 (or null)"),
    ("trainer.num_threads", -1, "at least 1"),
    ("trainer.num_threads", 0, "at least 1"),
    ("trainer.seed", -1, "at least 0"),
    ("trainer.seed", 1180591620717411303424, "at most 9223372036854775807"),
    ("trainer.device", "gpu", "'auto', 'cpu', 'cuda' or 'mps'"),
    ("trainer.progress", "maybe", "true or false"),
    ("data.window", 0, "at least 1"),
    ("data.window", -5, "at least 1"),
    ("data.stride", 0, "at least 1 (or null)"),
    ("data.limit", -1, "at least 1 (or null)"),
    ("data.limit", 0, "at least 1"),
    ("data.valid_fraction", 1.0, "less than 1"),
    ("data.valid_fraction", -0.1, "at least 0"),
    ("data.test_fraction", 2, "less than 1"),
    ("data.transpose", -1, "at least 0"),
    ("data.transpose", 100, "at most 12"),
    ("data.source", "", "non-empty"),
    ("model.name", 3, "a string"),
    ("name", "../elsewhere", "names run folders"),
    ("optim", 3, "a section"),
]


def _nested(key: str, value) -> dict:
    *parents, leaf = key.split(".")
    raw: dict = {leaf: value}
    for part in reversed(parents):
        raw = {part: raw}
    return raw


@pytest.mark.parametrize(("key", "value", "allowed"), BAD_VALUES, ids=[f"{k}={v!r}" for k, v, _ in BAD_VALUES])
def test_bad_value_is_one_sentence_naming_key_value_and_range(key, value, allowed):
    with pytest.raises(UserError) as caught:
        parse_config(_nested(key, value))
    message = str(caught.value)
    leaf = key.split(".")[-1]
    assert leaf in message and allowed in message
    assert "\n" not in message and "Traceback" not in message


@pytest.mark.parametrize(("key", "value", "allowed"), BAD_VALUES[:12], ids=[k for k, _, _ in BAD_VALUES[:12]])
def test_bad_value_through_set_override(tmp_path, key, value, allowed):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\ndata: {source: bach}\n")
    with pytest.raises(UserError, match=key.split(".")[-1]):
        load_config(recipe, [f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...')}"])


def test_sum_of_fractions_must_leave_training_pieces():
    with pytest.raises(UserError, match=r"valid_fraction \+ test_fraction .* below 1"):
        parse_config({"data": {"valid_fraction": 0.6, "test_fraction": 0.4}})


def test_unknown_keys_name_the_allowed_ones():
    with pytest.raises(UserError, match="unknown config key optim.learning_rate; allowed in optim: lr,"):
        parse_config({"optim": {"learning_rate": 1}})
    with pytest.raises(UserError, match="unknown config key trainers; allowed at the top level: name, data"):
        parse_config({"trainers": {}})


def test_good_values_at_the_edges_pass():
    config = parse_config({"optim": {"betas": [0, 0.999999], "grad_clip": None, "weight_decay": 0, "lr": "1e-3"},
                           "trainer": {"seed": 2**63 - 1, "max_steps": 1, "valid_batches": None, "device": "cpu"},
                           "data": {"window": 1, "valid_fraction": 0, "limit": 1, "transpose": 12}})
    assert config.optim.lr == 1e-3 and config.trainer.seed == 2**63 - 1 and config.optim.grad_clip is None


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.name for p in RECIPES])
def test_every_shipped_recipe_parses(recipe):
    assert load_config(recipe).name


def test_shipped_recipes_are_found():
    assert len(RECIPES) >= 10


# (file bytes, words the message must contain)
BAD_FILES = [
    (b"", "is empty"),
    (b"# only a comment\n", "is empty"),
    (b"- data\n- model\n", "YAML list"),
    (b"42\n", "YAML scalar (42)"),
    (b"just words\n", "YAML scalar ('just words')"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
    (b"name: caf\xe9\n", "not UTF-8"),
    (b"data: {source: [\n", "not valid YAML at line"),
    (b"[" * 5000, "nested too deeply"),
]


@pytest.mark.parametrize(("data", "words"), BAD_FILES, ids=[w for _, w in BAD_FILES])
def test_bad_recipe_file_is_one_sentence(tmp_path, data, words):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_bytes(data)
    with pytest.raises(UserError) as caught:
        load_config(recipe)
    assert words in str(caught.value) and str(recipe) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_directory_and_huge_recipe_files(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(UserError, match="not a regular file"):
        load_config(tmp_path)
    big = tmp_path / "big.yaml"
    big.write_text("name: x\n")
    monkeypatch.setattr(config_module, "MAX_RECIPE_BYTES", 4)
    with pytest.raises(UserError, match="larger than"):
        load_config(big)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_recipe(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\n")
    recipe.chmod(0)
    with pytest.raises(UserError, match="cannot read config file"):
        load_config(recipe)


@pytest.mark.parametrize("override", ["optim.lr", "optim..lr=1", "=3", "optim.lr=[1,"])
def test_bad_set_override_is_one_sentence(override):
    with pytest.raises(UserError, match="--set"):
        load_config(None, [override])


def test_parse_config_refuses_a_non_mapping():
    with pytest.raises(UserError, match="mapping of sections"):
        parse_config([1, 2])  # type: ignore[arg-type]


def test_dump_config_is_atomic_and_round_trips(tmp_path, monkeypatch):
    config = parse_config({"name": "x", "optim": {"lr": 0.5}})
    path = tmp_path / "config.yaml"
    dump_config(config, path)
    assert load_config(path) == config
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError):
        dump_config(parse_config({"name": "y"}), path)
    assert load_config(path).name == "x"  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]  # no temp file left


def test_check_device(monkeypatch):
    import torch

    check_device("auto")
    check_device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="device 'cuda' was asked for but this machine has no CUDA; use device: auto"):
        check_device("cuda")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(UserError, match="no Apple MPS"):
        check_device("mps")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
