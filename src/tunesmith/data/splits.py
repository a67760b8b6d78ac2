"""Deterministic split by piece: a piece's split depends only on its id, never on order or count.

u = first 8 bytes of sha256(piece_id) / 2^64 in [0, 1); u < test -> "test", u < test + valid -> "valid",
else "train". Adding pieces to a collection never moves existing pieces between splits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

SPLIT_RULE = "sha256(piece_id)[:8] / 2**64: < test_fraction -> test, < test+valid -> valid, else train"


def unit_hash(piece_id: str) -> float:
    """A uniform number in [0, 1) derived from the piece id."""
    digest = hashlib.sha256(piece_id.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(piece_id: str, valid_fraction: float, test_fraction: float = 0.0) -> str:
    u = unit_hash(piece_id)
    if u < test_fraction:
        return "test"
    return "valid" if u < test_fraction + valid_fraction else "train"


def split_ids(ids: Sequence[str], valid_fraction: float, test_fraction: float = 0.0) -> dict[str, list[str]]:
    """Group ids by split. With two or more pieces and valid_fraction > 0, valid is never empty:
    the train piece with the smallest hash moves there (still a function of the ids alone)."""
    groups: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    for piece_id in ids:
        groups[split_of(piece_id, valid_fraction, test_fraction)].append(piece_id)
    if valid_fraction > 0 and not groups["valid"] and len(groups["train"]) >= 2:
        moved = min(groups["train"], key=unit_hash)
        groups["train"].remove(moved)
        groups["valid"].append(moved)
    return groups


def ids_fingerprint(ids: Sequence[str]) -> str:
    """sha256 over the sorted ids: names the exact set of pieces a model was trained on."""
    return hashlib.sha256("\n".join(sorted(ids)).encode("utf-8", "surrogateescape")).hexdigest()[:16]
