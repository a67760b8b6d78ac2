"""Where the files that ship with tunesmith live: pretrained checkpoints and recipes.

Both travel inside the package as package data (so `pip install .` brings them):
`tunesmith/checkpoints/` (each `.ckpt` with its `.md` card) and `tunesmith/recipes/` (YAML recipes,
`debug/` ones for the tests). A source checkout also has `checkpoints` and `configs` at its root: links
to these two folders. `TUNESMITH_CHECKPOINTS` names a folder of the user's own checkpoints, searched
first for checkpoint names.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
CHECKPOINTS_DIR = PACKAGE_DIR / "checkpoints"
RECIPES_DIR = PACKAGE_DIR / "recipes"


def checkpoint_dirs() -> list[Path]:
    """Folders searched for shipped checkpoint names, first match wins: $TUNESMITH_CHECKPOINTS, then the package's."""
    user = [Path(os.environ["TUNESMITH_CHECKPOINTS"])] if os.environ.get("TUNESMITH_CHECKPOINTS") else []
    return [d for d in [*user, CHECKPOINTS_DIR] if d.is_dir()]


def recipe_dirs() -> list[Path]:
    """Folders holding the shipped YAML recipes."""
    return [d for d in [RECIPES_DIR] if d.is_dir()]


def shipped_recipe(name: str) -> Path | None:
    """The shipped recipe called `name` (`demo`, `lstm-bach`, `debug/lstm`), or None."""
    for folder in recipe_dirs():
        path = folder / f"{name.removesuffix('.yaml')}.yaml"
        if path.is_file():
            return path
    return None
