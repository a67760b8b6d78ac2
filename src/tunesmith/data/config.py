"""The `data` section of a run recipe (validated by pydantic; unknown keys are errors)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    """A config section that rejects unknown keys."""

    model_config = ConfigDict(extra="forbid")


class DataConfig(Strict):
    """What to train on and how to cut it into examples."""

    source: str = "bach"  # corpus name, ingest dataset folder, or folder of MIDI files
    representation: str = "notes"
    representation_config: dict[str, Any] = Field(default_factory=dict)
    window: int = 128  # example length in the representation's steps (tokens, frames, bars)
    stride: int | None = None  # between training windows; default: window // 2
    valid_fraction: float = 0.1  # of pieces, chosen by a hash of the piece id
    test_fraction: float = 0.0
    transpose: int = 0  # augment training pieces with every shift in [-transpose, +transpose] semitones
    limit: int | None = None  # use only the first N pieces of the source (debug runs)
