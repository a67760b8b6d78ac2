"""`multitrack`: five instrument-group velocity rolls (the LPD-5 layout of the multitrack latent models).

Array: shape (5, steps, 128), dtype uint8. Axis 0 is the group in `MULTITRACK_GROUPS` order
(piano, guitar, bass, strings, drums; by General MIDI program, `core.constants.program_group`);
axis 1 is time in grid steps of 1/`steps_per_quarter` quarter from tick 0 to the end of the last
note; axis 2 is the MIDI pitch 0..127; values are velocities 1..127 where a note sounds, 0 elsewhere.

Default grid: 4 steps per quarter (16th notes), so a 256-step window is 16 bars of 4/4; LPD itself
uses 24 steps per quarter (`steps_per_quarter=24`) to keep triplets and swing.

What is kept (see `canonical`): every track's notes, quantized, merged into their group (one track
per group with the group's program: piano 0, guitar 24, bass 32, strings 48, drums), with velocity.
Nothing is dropped: instruments outside the five groups are folded in by GM program
(`core.constants.program_group`, the LPD-5 rule): chromatic percussion and organs (8-23) go to piano,
and every program from 40 up (strings and ensembles, but also brass, reeds, pipes, synth leads and
pads, ethnic, percussive and sound effects) goes to strings; every drum-channel track is drums.
Within a group, notes of one pitch follow roll semantics (`_grid` docstring). A velocity roll has
no onset marks, so (as in LPD / pypianoroll) a note ends where the velocity changes, and back-to-back
notes of one pitch with equal velocity join into one. Drum hits are one step long, so every drum
step that is on is its own hit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from symusic import Score, Track

from tunesmith.core.constants import MULTITRACK_GROUPS, MULTITRACK_PROGRAMS, N_PITCHES, program_group
from tunesmith.core.errors import UserError
from tunesmith.representations import _grid
from tunesmith.representations.base import Representation

N_GROUPS = len(MULTITRACK_GROUPS)
DRUMS = MULTITRACK_GROUPS.index("drums")


@dataclass(frozen=True)
class MultitrackConfig:
    """steps_per_quarter: grid resolution; window: default length in steps of `windows`."""

    steps_per_quarter: int = 4
    window: int = 256

    def __post_init__(self) -> None:
        _grid.check_positive("steps_per_quarter", self.steps_per_quarter)
        _grid.check_positive("window", self.window)


def group_index(program: np.ndarray, is_drum: np.ndarray) -> np.ndarray:
    """Index into `MULTITRACK_GROUPS` of each (program, is_drum) pair; int64 array."""
    # Look each distinct (program, is_drum) pair up once: a score has few, but many notes.
    keys = np.asarray(program, np.int64) * 2 + np.asarray(is_drum, bool)
    pairs, inverse = np.unique(keys, return_inverse=True)
    lookup = [MULTITRACK_GROUPS.index(program_group(int(p) // 2, bool(p % 2))) for p in pairs]
    return np.asarray(lookup, dtype=np.int64)[inverse.reshape(-1)] if len(pairs) else np.zeros(0, np.int64)


def _check_shape(roll: np.ndarray) -> None:
    if roll.ndim != 3 or roll.shape[0] != N_GROUPS or roll.shape[2] != N_PITCHES:
        raise UserError(f"a multitrack roll has shape ({N_GROUPS}, steps, {N_PITCHES}), not {roll.shape}")


def windows(array: np.ndarray, length: int = 256) -> np.ndarray:
    """Non-overlapping windows of a (5, steps, 128) roll -> (n, 5, length, 128), same dtype.

    The last partial window is padded with silence; windows that are all zero are skipped.
    """
    roll = np.asarray(array)
    _check_shape(roll)
    _grid.check_positive("window length", length)
    n = -(-roll.shape[1] // length)
    padded = np.zeros((N_GROUPS, n * length, N_PITCHES), roll.dtype)
    padded[:, : roll.shape[1]] = roll
    out = padded.reshape(N_GROUPS, n, length, N_PITCHES).transpose(1, 0, 2, 3)
    return np.ascontiguousarray(out[out.any(axis=(1, 2, 3))])


class MultitrackRepresentation(Representation):
    """Five group velocity rolls; see the module docstring for the layout."""

    name = "multitrack"
    Config = MultitrackConfig
    note_fields: ClassVar[tuple[str, ...]] = ("pitch", "start", "duration", "velocity", "program", "is_drum")

    @property
    def tpq(self) -> int:
        """Ticks per quarter of decoded and canonical scores."""
        return _grid.output_tpq(self.config.steps_per_quarter)

    def _group_notes(self, score: Score) -> list[tuple[np.ndarray, ...]]:
        """Per group: (pitch, start, end, velocity) in steps, as the roll holds them."""
        table = _grid.step_table(score, self.config.steps_per_quarter)
        group = group_index(table["program"], table["is_drum"])
        out = []
        for g in range(N_GROUPS):
            t = _grid.select(table, group == g)
            end = t["start"] + 1 if g == DRUMS else t["end"]
            velocity = np.clip(t["velocity"], 1, 127)
            notes = _grid.resolve_overlaps(t["pitch"], t["start"], end, velocity)
            out.append(notes if g == DRUMS else _grid.merge_touching(*notes))
        return out

    def encode(self, score: Score) -> np.ndarray:
        """Score -> (5, steps, 128) uint8 velocity rolls."""
        groups = self._group_notes(score)
        n_steps = max((int(notes[2].max()) for notes in groups if len(notes[2])), default=0)
        roll = np.zeros((N_GROUPS, n_steps, N_PITCHES), np.uint8)
        for g, (pitch, start, end, velocity) in enumerate(groups):
            _grid.fill_roll(pitch.astype(np.int64), start, end, velocity.astype(np.uint8), roll[g])
        return roll

    def decode(self, array: np.ndarray) -> Score:
        """(5, steps, 128) velocities (0..127) -> one track per group, at `self.tpq`."""
        roll = _grid.as_int_array(array, "a multitrack roll", 3)
        _check_shape(roll)
        if roll.size and (roll.min() < 0 or roll.max() > 127):
            raise UserError("multitrack velocities must lie in 0..127")
        groups = []
        for g in range(N_GROUPS):
            on = roll[g] > 0
            prev = np.zeros_like(roll[g])
            prev[1:] = roll[g][:-1]
            begin = on if g == DRUMS else on & (roll[g] != prev)
            pitch, start, end = _grid.runs(begin, on & (g != DRUMS))
            groups.append((pitch, start, end, roll[g][start, pitch]))
        return self._score(groups)

    def canonical(self, score: Score) -> Score:
        """One track per group: quantized, roll-resolved, equal-velocity repeats joined, drums 1 step."""
        return self._score(self._group_notes(score))

    def _score(self, groups: list[tuple[np.ndarray, ...]]) -> Score:
        ticks = self.tpq // self.config.steps_per_quarter
        tracks: list[Track] = []
        for g, (pitch, start, end, velocity) in enumerate(groups):
            name = MULTITRACK_GROUPS[g]
            tracks.append(_grid.make_step_track(
                pitch, start, end, velocity, ticks,
                program=MULTITRACK_PROGRAMS[name], is_drum=g == DRUMS, name=name,
            ))
        return _grid.score_with_tracks(tracks, self.tpq)

    def windows(self, array: np.ndarray, length: int | None = None) -> np.ndarray:
        """`windows(array, length or config.window)`: (n, 5, length, 128) non-empty windows."""
        return windows(array, length or self.config.window)
