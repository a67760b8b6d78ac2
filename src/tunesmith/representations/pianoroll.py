"""`pianoroll`: 88 piano keys x (onset, sustain) per grid step (the seq2one / seq2seq representation).

Array: shape (steps, 88, 2), dtype bool. Axis 0 is time in grid steps of 1/`steps_per_quarter`
quarter from tick 0 up to the end of the last note; axis 1 is the key, MIDI pitch 21 (A0) + index up
to 108 (C8); axis 2 is [onset, sustain]: a note of key k from step a to step b (exclusive) sets
onset[a, k] and sustain[a+1 .. b-1, k]. `array.reshape(steps, 176)` gives the seed project's layout
(column 2k onset, 2k+1 sustain).

What is kept (see `canonical`): the notes of every pitched track merged into one piano track (drums
dropped), quantized to the grid, notes outside the piano range dropped, velocity dropped (decoded
notes have velocity 80), and notes of one key laid out by roll semantics (`_grid` module docstring).

Decoding accepts any numeric array of that shape (nonzero = on) and repairs what a model may emit,
as the seed's `cleanSeq` did: a sustain with no note sounding before it starts a new note.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from symusic import Score

from tunesmith.core.constants import PIANO_HIGH, PIANO_KEYS, PIANO_LOW
from tunesmith.core.errors import UserError
from tunesmith.representations import _grid
from tunesmith.representations.base import Representation


@dataclass(frozen=True)
class PianorollConfig:
    """steps_per_quarter: grid resolution (4 = 16th notes, as the seed's QNSF)."""

    steps_per_quarter: int = 4

    def __post_init__(self) -> None:
        _grid.check_positive("steps_per_quarter", self.steps_per_quarter)


class PianorollRepresentation(Representation):
    """88-key (onset, sustain) roll; see the module docstring for the layout."""

    name = "pianoroll"
    Config = PianorollConfig

    @property
    def tpq(self) -> int:
        """Ticks per quarter of decoded and canonical scores."""
        return _grid.output_tpq(self.config.steps_per_quarter)

    def _piano_notes(self, score: Score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(key index 0..87, start step, end step) of the notes this roll keeps, roll-resolved."""
        table = _grid.step_table(score, self.config.steps_per_quarter, pitched_only=True)
        table = _grid.select(table, (table["pitch"] >= PIANO_LOW) & (table["pitch"] <= PIANO_HIGH))
        pitch, start, end, _ = _grid.resolve_overlaps(
            table["pitch"], table["start"], table["end"], np.zeros(len(table["pitch"]), np.int64)
        )
        return pitch.astype(np.int64) - PIANO_LOW, start, end

    def encode(self, score: Score) -> np.ndarray:
        """Score -> (steps, 88, 2) bool roll: [..., 0] onsets, [..., 1] sustains."""
        key, start, end = self._piano_notes(score)
        n_steps = int(end.max()) if len(end) else 0
        roll = np.zeros((n_steps, PIANO_KEYS, 2), bool)
        roll[start, key, 0] = True
        sustain = np.zeros((n_steps, PIANO_KEYS), bool)
        _grid.fill_roll(key, start + 1, np.maximum(end, start + 1), np.ones(len(key), bool), sustain)
        roll[..., 1] = sustain
        return roll

    def decode(self, array: np.ndarray) -> Score:
        """(steps, 88, 2) roll (nonzero = on) -> one piano track, velocity 80, at `self.tpq`."""
        roll = np.asarray(array)
        if roll.ndim != 3 or roll.shape[1:] != (PIANO_KEYS, 2):
            raise UserError(f"a pianoroll must have shape (steps, {PIANO_KEYS}, 2), got {roll.shape}")
        onset, sustain = roll[..., 0] != 0, roll[..., 1] != 0
        sounding_before = np.zeros_like(onset)
        sounding_before[1:] = onset[:-1] | sustain[:-1]
        begin = onset | (sustain & ~sounding_before)
        return self._score(*_grid.runs(begin, sustain))

    def canonical(self, score: Score) -> Score:
        """Pitched notes in the piano range, merged, quantized and roll-resolved; velocity 80."""
        return self._score(*self._piano_notes(score))

    def _score(self, key: np.ndarray, start: np.ndarray, end: np.ndarray) -> Score:
        """One piano track (velocity 80) from key indices and steps."""
        ticks = self.tpq // self.config.steps_per_quarter
        velocity = _grid.DEFAULT_VELOCITY
        track = _grid.make_step_track(key + PIANO_LOW, start, end, velocity, ticks, name="piano")
        return _grid.score_with_tracks([track], self.tpq)
