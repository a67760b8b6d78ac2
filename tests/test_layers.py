"""The layering of DESIGN.md, checked on every import statement (top-level and inside functions).

Data flows one way: core <- io <- representations <- corpora <- data <- evaluation <- models <-
training / generation / scoring <- cli. `evaluation` holds the torch-free metrics (models may use
them); what needs a trained network lives in `scoring`, beside training and generation. An import
against the arrows fails here, naming the module and the import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "tunesmith"

# package -> the tunesmith packages it may import (itself always allowed)
BELOW = {
    "resources": set(),
    "core": set(),
    "io": {"core", "resources"},
    "representations": {"core", "io"},
    "corpora": {"core", "io", "representations"},
    "data": {"core", "io", "representations", "corpora"},
    "evaluation": {"core", "io", "representations", "corpora", "data"},
    "models": {"core", "io", "representations", "corpora", "evaluation", "data", "resources"},
}
BELOW["training"] = BELOW["models"] | {"models"}
BELOW["generation"] = BELOW["models"] | {"models"}
BELOW["scoring"] = BELOW["models"] | {"models"}
TORCH_FREE = ("core", "io", "representations", "evaluation")


def _layer(module: Path) -> str:
    parts = module.relative_to(PACKAGE).with_suffix("").parts
    return parts[0] if len(parts) > 1 else parts[0]


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every import in the file, including imports inside functions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down_the_layers(path):
    layer = _layer(path)
    if layer not in BELOW:  # cli.py, demo.py, __init__.py: the top may import anything
        return
    for line, name in _imports(path):
        parts = name.split(".")
        if parts[0] != "tunesmith" or len(parts) < 2 or parts[1] == layer:
            continue
        target = parts[1]
        assert target in BELOW[layer], f"{path.relative_to(PACKAGE)}:{line} imports {name} ({layer} -> {target})"


@pytest.mark.parametrize("path", [p for p in MODULES if _layer(p) in TORCH_FREE],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_torch_free_layers_never_import_torch(path):
    for line, name in _imports(path):
        assert name.split(".")[0] != "torch", f"{path.relative_to(PACKAGE)}:{line} imports {name}"


def test_the_check_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import os\n\ndef f():\n    from tunesmith.models import MODELS\n    return MODELS\n")
    assert (4, "tunesmith.models") in _imports(module)
