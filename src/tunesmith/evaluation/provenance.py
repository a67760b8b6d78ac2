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


def key_normalised(record: dict[str, Any] | None) -> bool:
    """Whether sets are compared in C major / A minor for this model: it was trained on key-normalised
    data, or with transposition augmentation (whose spread of keys is not the model's fault: issue 11)."""
    training = (record or {}).get("training_data", {})
    return bool(training.get("normalize_key")) or int(training.get("transpose") or 0) > 0


def generated_in_model_terms(generated, record: dict[str, Any] | None):
    """The generated `PieceSet` moved to C major / A minor when `key_normalised(record)` and the model
    was not already trained in those keys; else unchanged."""
    from dataclasses import replace

    from tunesmith.data.augment import to_common_key

    if not key_normalised(record) or record.get("training_data", {}).get("normalize_key"):
        return generated
    return replace(generated, name=f"{generated.name} (in C / Am)",
                   scores=[to_common_key(s) for s in generated.scores])


def reference_in_model_terms(reference, record: dict[str, Any]):
    """The reference `PieceSet` as the generating model's representation holds music (its `canonical`
    form: a melody for a melody model, the model's grid and range), so that a one-track melody is not
    measured against four-voice chorales; in C major / A minor when the model was trained on
    key-normalised data. Pieces the representation cannot hold are left out; a record without a
    representation returns the reference unchanged. Both sets are compared in C major / A minor when the
    model was trained key-normalised or with transposition augmentation (`key_normalised`)."""
    from dataclasses import replace

    from tunesmith.core.errors import SkipFile, UserError
    from tunesmith.data.augment import to_common_key
    from tunesmith.representations import representation_from_dict

    if not isinstance(record.get("representation"), dict):
        return reference
    try:
        rep = representation_from_dict(record["representation"])
    except (UserError, KeyError, TypeError, ValueError):
        return reference
    normalize = key_normalised(record)
    ids, scores = [], []
    for piece_id, score in zip(reference.ids, reference.scores, strict=True):
        try:
            canonical = rep.canonical(to_common_key(score) if normalize else score)
        except (SkipFile, UserError):
            continue
        if canonical.note_num():
            ids.append(piece_id)
            scores.append(canonical)
    if len(scores) < 2:
        raise UserError(f"fewer than 2 reference pieces can be held in the model's {rep.name} representation; "
                        "add --as-is to compare the reference unchanged")
    return replace(reference, name=f"{reference.name} (as {rep.name})", ids=ids, scores=scores, folder=None)
