"""The provenance sidecar of a generated folder (`generation.json`, written by `tunesmith generate`):
what made the files (checkpoint and its hash, model, representation, seed, options)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SIDECAR = "generation.json"


def read_sidecar(folder: Path | str) -> dict[str, Any] | None:
    """The provenance record of a generated folder, or None when it has none (or an unreadable one)."""
    try:
        record = json.loads((Path(folder) / SIDECAR).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None
