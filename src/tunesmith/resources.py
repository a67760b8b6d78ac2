"""Where the files that ship with tunesmith live: pretrained checkpoints and recipes.

Both travel inside the package (so `pip install .` brings them); `TUNESMITH_CHECKPOINTS` adds a
folder of the user's own checkpoints that shipped names are also looked up in.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT_ROOT = PACKAGE_DIR.parents[1]  # <root>/src/tunesmith -> <root>, in a source checkout


def checkpoint_dirs() -> list[Path]:
    """Folders searched for shipped checkpoint names, first match wins."""
    user = [Path(os.environ["TUNESMITH_CHECKPOINTS"])] if "TUNESMITH_CHECKPOINTS" in os.environ else []
    candidates = [*user, PACKAGE_DIR / "checkpoints", _CHECKOUT_ROOT / "checkpoints"]
    return [d for d in candidates if d.is_dir()]


def recipe_dirs() -> list[Path]:
    """Folders holding the shipped YAML recipes."""
    candidates = [PACKAGE_DIR / "recipes", _CHECKOUT_ROOT / "configs"]
    return [d for d in candidates if d.is_dir()]


def shipped_recipe(name: str) -> Path | None:
    """The shipped recipe called `name` (`demo`, `lstm-bach`, `debug/lstm`), or None."""
    for folder in recipe_dirs():
        path = folder / f"{name.removesuffix('.yaml')}.yaml"
        if path.is_file():
            return path
    return None
