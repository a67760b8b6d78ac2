"""The representation contract: a config dataclass + encode(Score) -> ndarray + decode(ndarray) -> Score.

Law (tested over the whole registry on real and generated scores):
    decode(encode(s)) has the same notes as canonical(s)
where `canonical(s)` is `s` quantized to the representation's grid and range (and, for lossy
representations such as a monophonic melody, reduced the documented way). Also
    encode(decode(encode(s))) == encode(s).

Token representations (1-D int64 arrays of token ids) also expose `vocab` (list of token strings),
`vocab_size`, and the special ids `pad_id`, `bos_id`, `eos_id`; `encode` never adds BOS/EOS (the data
layer does), `decode` ignores special tokens. Representations whose vocabulary depends on the data
(e.g. `notes`) learn it in `fit(scores)`; the vocabulary is part of `to_dict()` so checkpoints carry it.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np
from symusic import Score


class Representation(ABC):
    """Base class: subclasses set `name` and `Config` (a dataclass) and implement the three methods."""

    name: ClassVar[str]
    Config: ClassVar[type]
    is_tokens: ClassVar[bool] = False
    # True where the class has `note_steps(...)` and `step_ids(pitch, begin, end, n_steps, first, stop)`: a
    # window encoded straight from a cache's note arrays (streamed data), without building a Score.
    encodes_note_arrays: ClassVar[bool] = False
    # Note-table fields (`core.score.NOTE_FIELDS`) that survive decode(encode(s)); the law compares these.
    note_fields: ClassVar[tuple[str, ...]] = ("pitch", "start", "duration")

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        base = config if config is not None else self.Config()
        self.config = dataclasses.replace(base, **overrides) if overrides else base

    @abstractmethod
    def encode(self, score: Score) -> np.ndarray:
        """Score (ticks) -> array; shape and units in the subclass docstring."""

    @abstractmethod
    def decode(self, array: np.ndarray) -> Score:
        """Array -> Score (ticks); inverse of `encode` on canonical scores."""

    @abstractmethod
    def canonical(self, score: Score) -> Score:
        """`score` reduced to what this representation can hold (grid, range, voices)."""

    def span(self, array: np.ndarray) -> int:
        """Ticks (at the decoded score's resolution) that `array` covers, trailing rests included;
        default: the decoded score's end, for representations that hold no rests."""
        return self.decode(array).end()

    def fit(self, scores: Iterable[Score]) -> Representation:
        """Learn data-dependent state (a vocabulary) from training scores; default: nothing to learn."""
        return self

    def state(self) -> dict[str, Any]:
        """Learned state to save beside the config (e.g. a vocabulary); default: none."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:  # noqa: B027 (optional hook, default no-op)
        """Restore what `state()` returned."""

    def to_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild this representation: name, config and learned state (JSON-able)."""
        return {"name": self.name, "config": dataclasses.asdict(self.config), "state": self.state()}


class LearnedVocabRepresentation(Representation):
    """A token representation whose vocabulary is built at run time (from data or a tokenizer) and
    kept in `self._vocab` (token strings in id order)."""

    is_tokens: ClassVar[bool] = True
    _vocab: list[str]

    @property
    def vocab(self) -> list[str]:
        return list(self._vocab)

    @property
    def vocab_size(self) -> int:
        return len(self._vocab)
