"""`pip install .` gives a working tool: shipped checkpoints and recipes travel in the wheel.

The wheel is built from a copy of the source (no build/ or egg-info left in the checkout), installed
without network and without dependencies into a fresh folder (`pip install --no-deps --target`), and
run from an unrelated directory with .venv's python: PYTHONPATH puts the installed copy first, the
dependencies come from .venv. Every check asserts the installed copy, not the editable checkout, is
the one that ran.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JSB_TINY = ROOT / "tests" / "fixtures" / "jsb" / "jsb-tiny-quarter.json"
SHIPPED = {"checkpoints/jsb-best.ckpt", "checkpoints/jsb-best.md", "checkpoints/lstm-bach.ckpt",
           "checkpoints/lstm-bach.md", "checkpoints/lstm-bach.yaml", "checkpoints/midinet.ckpt",
           "checkpoints/midinet-autoencoder.ckpt", "checkpoints/midinet.md", "recipes/demo.yaml",
           "recipes/lstm-bach.yaml", "recipes/debug/lstm.yaml"}


def _pip(*args: str, cwd: Path) -> None:
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([sys.executable, "-m", "pip", *args, "-q", "--no-index"], cwd=cwd, env=env, check=True,
                   capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `pip wheel .` builds (offline, no build isolation: setuptools comes from .venv)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    _pip("wheel", ".", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), cwd=source)
    (built,) = (tmp / "dist").glob("tunesmith-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> dict:
    """The wheel installed into a fresh folder; the environment and cwd that run it from outside."""
    tmp = tmp_path_factory.mktemp("installed")
    site = tmp / "site"
    _pip("install", "--no-deps", "--target", str(site), str(wheel), cwd=tmp)
    env = {k: v for k, v in os.environ.items() if k not in ("TUNESMITH_CHECKPOINTS", "PYTHONPATH")}
    env.update(PYTHONPATH=str(site), TUNESMITH_CACHE=str(tmp / "cache"), OMP_NUM_THREADS="1")
    elsewhere = tmp / "elsewhere"  # unrelated cwd: no checkout, no configs/ or checkpoints/ beside it
    elsewhere.mkdir()
    return {"site": site, "env": env, "cwd": elsewhere}


def _run(installed: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *args], cwd=installed["cwd"], env=installed["env"],
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def _cli(installed: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return _run(installed, "-m", "tunesmith.cli", *args, timeout=timeout)


def test_wheel_holds_checkpoints_and_recipes(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = {f"tunesmith/{path}" for path in SHIPPED} - names
    assert not missing
    recipes = {p.relative_to(ROOT / "src").as_posix() for p in (ROOT / "src/tunesmith/recipes").rglob("*.yaml")}
    assert recipes <= names


def test_installed_copy_finds_its_own_files(installed):
    code = ("import json, tunesmith, tunesmith.resources as r; print(json.dumps({'file': tunesmith.__file__, "
            "'demo': str(r.shipped_recipe('demo')), 'debug': str(r.shipped_recipe('debug/lstm')), "
            "'dirs': [str(d) for d in r.checkpoint_dirs() + r.recipe_dirs()]}))")
    found = json.loads(_run(installed, "-c", code).stdout)
    site = installed["site"].resolve()
    for path in [found["file"], found["demo"], found["debug"], *found["dirs"]]:
        assert Path(path).resolve().is_relative_to(site), path
    assert len(found["dirs"]) == 2


def test_installed_commands_run_from_another_directory(installed, tmp_path):
    site = installed["site"]
    listing = _run(installed, str(site / "bin" / "tunesmith"), "models").stdout  # the console script pip wrote
    assert "lstm" in listing
    out = tmp_path / "generated"
    _cli(installed, "generate", "lstm-bach", "--out", str(out), "--n", "1", "--bars", "2", "--seed", "1")
    assert len(list(out.glob("*.mid"))) == 1
    bench = _cli(installed, "benchmark", "jsb", "jsb-best", "--data", str(JSB_TINY), "--split", "valid").stdout
    assert "nats per frame" in bench


def test_user_checkpoint_folder_comes_first(tmp_path, monkeypatch):
    from tunesmith import resources

    monkeypatch.setenv("TUNESMITH_CHECKPOINTS", str(tmp_path))
    assert resources.checkpoint_dirs() == [tmp_path, resources.CHECKPOINTS_DIR]
    monkeypatch.setenv("TUNESMITH_CHECKPOINTS", str(tmp_path / "missing"))
    assert resources.checkpoint_dirs() == [resources.CHECKPOINTS_DIR]


def test_checkout_links_reach_the_package_folders():
    """`tunesmith train configs/lstm-bach.yaml` and checkpoints/NAME.ckpt keep working in a checkout."""
    assert (ROOT / "configs").resolve() == (ROOT / "src/tunesmith/recipes").resolve()
    assert (ROOT / "checkpoints").resolve() == (ROOT / "src/tunesmith/checkpoints").resolve()


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("TUNESMITH_TEST_DEMO"), reason="the demo trains for minutes: "
                    "set TUNESMITH_TEST_DEMO=1 to run it from the installed wheel")
def test_installed_demo(installed, tmp_path):
    _cli(installed, "demo", "--out", str(tmp_path / "demo"), timeout=900)
    assert list((tmp_path / "demo").glob("*.mid"))
