"""Representations registered by name. See `base.py` for the contract and the round-trip law."""

from __future__ import annotations

from typing import Any

from tunesmith.core.errors import UserError
from tunesmith.representations.base import Representation

REPRESENTATIONS: dict[str, type[Representation]] = {}


def get_representation(name: str, **config: Any) -> Representation:
    """A representation by registered name, its config fields overridden by keyword."""
    if name not in REPRESENTATIONS:
        raise UserError(f"unknown representation {name!r}; known: {', '.join(sorted(REPRESENTATIONS))}")
    cls = REPRESENTATIONS[name]
    return cls(cls.Config(**config))


def representation_from_dict(data: dict[str, Any]) -> Representation:
    """Inverse of `Representation.to_dict()` (used by checkpoints)."""
    rep = get_representation(data["name"], **data.get("config", {}))
    rep.load_state(data.get("state", {}))
    return rep
