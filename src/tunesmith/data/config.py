"""The `data` section of a run recipe (validated by pydantic; unknown keys are errors).

Also the typed building blocks every recipe section uses: numbers that refuse true/false and
non-finite values, with ranges stated once (`Count`, `Positive`, ...). A value out of range becomes
one sentence naming the key, the value and what is allowed (`training.config.parse_config`).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator


class Strict(BaseModel):
    """A config section that rejects unknown keys."""

    model_config = ConfigDict(extra="forbid")


def _not_bool(value: Any) -> Any:
    """YAML `true` is not the number 1: refuse booleans where a number is expected."""
    if isinstance(value, bool):
        raise ValueError("a number, not true or false")
    return value


def _finite(value: Any) -> Any:
    """Refuse inf and NaN (also as YAML `.inf` / `.nan` or strings) before pydantic's range checks,
    whose messages would not say "finite"."""
    value = _not_bool(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value  # pydantic reports "a number"
    if not math.isfinite(number):
        raise ValueError("a finite number")
    return value


Int = Annotated[int, BeforeValidator(_not_bool)]
Float = Annotated[float, BeforeValidator(_finite)]
Count = Annotated[Int, Field(ge=1)]  # how many of something: 1 or more
Positive = Annotated[Float, Field(gt=0)]  # a finite number above 0
NonNegative = Annotated[Float, Field(ge=0)]
Fraction = Annotated[Float, Field(ge=0, lt=1)]  # in [0, 1)
Name = Annotated[str, Field(min_length=1)]

MAX_WINDOW = 1_000_000  # steps; a padded example of this length is already 8 MB of int64
MAX_TRANSPOSE = 12  # semitones each way: one octave covers every key


class DataConfig(Strict):
    """What to train on and how to cut it into examples."""

    source: Name = "bach"  # corpus name, ingest dataset folder, or folder of MIDI files
    representation: Name = "notes"
    representation_config: dict[str, Any] = Field(default_factory=dict)
    # example length in the representation's steps (tokens, frames, bars)
    window: Annotated[Int, Field(ge=1, le=MAX_WINDOW)] = 128
    stride: Count | None = None  # steps between training windows; default: window // 2
    valid_fraction: Fraction = 0.1  # of pieces, chosen by a hash of the piece id
    test_fraction: Fraction = 0.0
    # augment training pieces with every shift in [-transpose, +transpose] semitones
    transpose: Annotated[Int, Field(ge=0, le=MAX_TRANSPOSE)] = 0
    # transpose every piece to C major / A minor (its estimated key) before augmentation and encoding
    normalize_key: bool = False
    limit: Count | None = None  # use only the first N pieces of the source (debug runs)
    streaming: bool = False  # read an ingest dataset's pieces when a window needs them (data/streaming.py)
    # token models: add training windows that hold a piece's end until they are this share of the training
    # items (data/end_windows.py), so end and bar-countdown tokens are seen often; validation is untouched
    end_windows: Fraction = 0.0
    # token models with bar countdown tokens: weight of the loss on each training piece's last `end_bars`
    # bars and its end token (data/end_windows.end_weights); 1: unweighted (items hold tokens only)
    end_weight: Annotated[Float, Field(gt=0, le=100)] = 1.0
    end_bars: Annotated[Int, Field(ge=1, le=64)] = 1

    @model_validator(mode="after")
    def _fractions_leave_training(self) -> DataConfig:
        if self.valid_fraction + self.test_fraction >= 1:
            raise ValueError(
                f"valid_fraction + test_fraction ({self.valid_fraction} + {self.test_fraction}) must be "
                "below 1, so that some pieces are left to train on"
            )
        if (self.end_windows > 0 or self.end_weight != 1) and self.streaming:
            raise ValueError("end_windows and end_weight apply to in-memory token windows, not to streaming: "
                             "set one of them")
        return self
