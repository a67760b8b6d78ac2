"""`grid`: one symbol per grid step, pitch / hold / rest (the Bach LSTM and VAE representation).

Array: 1-D int64 token ids, one per step of 1/`steps_per_quarter` quarter (default 4: 16th notes)
from tick 0 to the end of the last melody note. Fixed vocabulary of 133 tokens:

    id 0 `<pad>`, 1 `<bos>`, 2 `<eos>`, 3 `r` (a rest starts), 4 `_` (hold the previous symbol),
    5 + p  the MIDI pitch p (0..127) starts, written as its number ("60").

A note of pitch 67 lasting a quarter then a 16th rest is `67 _ _ _ r`; a 3-step rest is `r _ _`.

Polyphony (see `canonical`): the melody is the *skyline* of all pitched tracks (drums dropped): at
each step the highest sounding pitch after quantization and roll semantics (`_grid` docstring). A
melody note starts where the top pitch changes or where the top note itself starts (a re-struck
note); it lasts while the same note stays on top. Velocity is dropped (decoded notes: 80).
Decoding ignores special tokens (they take no time); a leading `_` holds silence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from symusic import Score

from tunesmith.core.constants import N_PITCHES
from tunesmith.core.errors import SkipFile, UserError
from tunesmith.core.score import grid_steps, note_table
from tunesmith.representations import _grid, _melody
from tunesmith.representations.base import Representation

REST_ID, HOLD_ID, PITCH0_ID = 3, 4, 5
VOCAB = (*_grid.SPECIALS, "r", "_", *(str(p) for p in range(N_PITCHES)))


@dataclass(frozen=True)
class GridConfig:
    """steps_per_quarter: grid resolution (4 = 16th notes, as the seed)."""

    steps_per_quarter: int = 4

    def __post_init__(self) -> None:
        _grid.check_positive("steps_per_quarter", self.steps_per_quarter)


class GridRepresentation(Representation):
    """Monophonic pitch / hold / rest symbols per step; see the module docstring."""

    name = "grid"
    Config = GridConfig
    is_tokens = True
    encodes_note_arrays = True
    vocab: ClassVar[list[str]] = list(VOCAB)
    vocab_size: ClassVar[int] = len(VOCAB)
    pad_id, bos_id, eos_id = 0, 1, 2

    @property
    def tpq(self) -> int:
        """Ticks per quarter of decoded and canonical scores."""
        return _grid.output_tpq(self.config.steps_per_quarter)

    def melody_steps(self, score: Score) -> tuple[np.ndarray, np.ndarray]:
        """The skyline melody per step: (pitch or -1 for silence, True where a note starts); int64, bool."""
        top, top_start = _melody.skyline(*_melody.steps_of_score(score, self.config.steps_per_quarter))
        steps = np.arange(len(top))
        prev = np.r_[_melody.REST, top[:-1]]
        starts = (top != _melody.REST) & ((top != prev) | (top_start == steps))
        return top, starts

    def encode(self, score: Score) -> np.ndarray:
        """Score -> (steps,) int64 ids: pitch at a note start, `r` at a rest start, `_` elsewhere."""
        table = note_table(score)
        return self.encode_notes(table["pitch"], table["start"], table["duration"], table["is_drum"],
                                 score.ticks_per_quarter)

    def encode_notes(self, pitch: np.ndarray, start: np.ndarray, duration: np.ndarray, is_drum: np.ndarray,
                     tpq: int, shift: int = 0) -> np.ndarray:
        """`encode` from parallel note arrays in any order (ticks at `tpq`; e.g. an ingest cache's note
        table, with no Score built), pitched notes moved by `shift` semitones: (steps,) int64 ids.

        The same ids as `melody_steps` gives, in a dozen numpy calls: roll semantics only move where a
        note of one pitch ends inside the span its notes cover together, so the highest pitch per step
        is the highest of the original notes covering it, and a melody note starts where that pitch
        changes or where a note of the top pitch starts (`test_grid_fast.py` compares both).
        """
        notes = self.note_steps(pitch, start, duration, is_drum, tpq, shift)
        return self.step_ids(*notes, 0, notes[3])

    def note_steps(self, pitch: np.ndarray, start: np.ndarray, duration: np.ndarray, is_drum: np.ndarray,
                   tpq: int, shift: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """The pitched notes that start at tick 0 or later as int64 (pitch + `shift`, first step, end step),
        and the piece's length in steps; SkipFile past `_grid.MAX_STEPS` (arguments as `encode_notes`)."""
        keep = (np.asarray(start) >= 0) & ~np.asarray(is_drum, bool)
        pitch = np.asarray(pitch)[keep].astype(np.int64) + shift
        begin, end = grid_steps(np.asarray(start)[keep].astype(np.int64), np.asarray(duration)[keep].astype(np.int64),
                                tpq, self.config.steps_per_quarter)
        n_steps = int(end.max()) if len(end) else 0
        if n_steps > _grid.MAX_STEPS:
            raise SkipFile(f"score spans {n_steps} grid steps, more than the limit of {_grid.MAX_STEPS}")
        return pitch, begin, end, n_steps

    def step_ids(self, pitch: np.ndarray, begin: np.ndarray, end: np.ndarray, n_steps: int, first: int,
                 stop: int) -> np.ndarray:
        """ids[first:stop] of the piece `note_steps` gave (0 <= first <= stop <= n_steps), int64. Only the
        notes sounding in steps first - 1 .. stop - 1 are painted: a window of a long piece costs what
        the window holds, not what the piece holds."""
        lo = max(first - 1, 0)  # the step before `first` tells whether a note or a rest starts there
        width = stop - lo
        near = (end > lo) & (begin < stop)
        p, b, e = pitch[near], np.maximum(begin[near], lo) - lo, np.minimum(end[near], stop) - lo
        top = np.full(width + 1, _melody.REST, np.int64)  # top[-1] stays silent: the step before step 0
        order = np.argsort(p, kind="stable")  # painted low to high: the highest pitch wins a step
        lengths = (e - b)[order]
        steps = np.repeat(b[order] - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        top[steps] = np.repeat(p[order], lengths)
        struck = np.zeros(width + 1, bool)
        # A note of the top pitch starts here (a re-strike). A note begun before the span marks the span's
        # first step, which is only returned when it is the piece's step 0, where every note begins.
        struck[b[top[b] == p]] = True
        top, prev = top[:-1], top[np.arange(-1, width - 1)]
        ids = np.full(width, HOLD_ID, np.int64)
        sounding = top != _melody.REST
        note_starts = sounding & ((top != prev) | struck[:-1])
        ids[note_starts] = PITCH0_ID + top[note_starts]
        ids[~sounding & (prev != _melody.REST)] = REST_ID
        if lo == 0 and width and not sounding[0]:
            ids[0] = REST_ID  # a rest at step 0 starts there
        return ids[first - lo :]

    def decode(self, array: np.ndarray) -> Score:
        """(n,) ids -> one melody track at `self.tpq`; special ids are skipped."""
        ids = _grid.as_int_array(array, "grid tokens", 1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise UserError(f"grid token ids must lie in 0..{self.vocab_size - 1}")
        ids = ids[ids >= REST_ID]
        # Each step carries the last symbol that was not a hold (or a rest before any symbol).
        last = np.maximum.accumulate(np.where(ids != HOLD_ID, np.arange(len(ids)), -1))
        state = np.where(last >= 0, ids[np.maximum(last, 0)], REST_ID)
        sounding = state >= PITCH0_ID
        starts = ids >= PITCH0_ID
        return self._score(np.where(sounding, state - PITCH0_ID, _melody.REST), starts)

    def span(self, array: np.ndarray) -> int:
        """Ticks the tokens cover: one grid step per token that is not a special token."""
        ids = _grid.as_int_array(array, "grid tokens", 1)
        return int((ids >= REST_ID).sum()) * (self.tpq // self.config.steps_per_quarter)

    def canonical(self, score: Score) -> Score:
        """The skyline melody of the pitched tracks, quantized; velocity 80."""
        return self._score(*self.melody_steps(score))

    def _score(self, top: np.ndarray, starts: np.ndarray) -> Score:
        """One track from per-step pitch (-1 = silence) and note-start flags."""
        inside = top != _melody.REST
        _, start, end = _grid.runs(starts[:, None], inside[:, None])
        ticks = self.tpq // self.config.steps_per_quarter
        track = _grid.make_step_track(top[start], start, end, _grid.DEFAULT_VELOCITY, ticks, name="melody")
        return _grid.score_with_tracks([track], self.tpq)
