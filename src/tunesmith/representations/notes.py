"""`notes`: one token per onset, a note or chord name with its duration (the seed LSTM / GRU stream).

Array: 1-D int64 token ids. A token is `SYMBOL_DURATION`, the duration in quarters from the
configured grid (written "0.25", "1.0", "1.5", or "1/3" for non-binary values):
- `E4_1.0`: one note, music21-style name with sharps (`core.constants.pitch_name`);
- `4.7.11_0.5`: a chord, its pitch classes in normal order (as music21's `Chord.normalOrder`);
- `R_0.5`: a rest.
Time is sequential: each token lasts its duration and the next token starts where it ends.

Vocabulary: `<pad>` 0, `<bos>` 1, `<eos>` 2, `<unk>` 3, then every token seen by `fit(scores)`,
sorted alphabetically. It is saved by `state()` (part of `to_dict()`).

Reduction (see `canonical`), on the notes of all pitched tracks merged (or of `tracks`):
1. starts and ends are quantized to `steps_per_quarter`; notes starting on one step form an onset;
2. one distinct pitch -> a note token; several -> the pitch classes collected from the lowest pitch
   up, at most `max_chord_size` of them, in normal order (if they share one pitch class, the note
   token of the lowest pitch);
3. the onset's duration is its longest note, cut at the next onset, rounded *down* to the grid
   (the grid must hold one step, so every gap is exact and onsets never move); every note of the
   onset gets that duration; a gap before an onset is filled greedily with the longest rests;
4. decoding voices a chord in close position from octave 4: the first pitch class of the normal
   order in octave 4, each next one the nearest pitch above (`4.7.11` -> E4 G4 B4; the seeds' chords
   also landed in octave 4). Velocity is dropped (decoded notes: 80).
Unknown tokens at encode: a known symbol with an unknown duration takes the nearest known duration
of that symbol (ties: shorter), which shifts later onsets by the difference; an unknown symbol is
`<unk>`, which decode skips (it takes no time). `canonical` applies the same mapping, so the law
holds for any score; `encode(decode(encode(s))) == encode(s)` needs a vocabulary covering `s`.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
from symusic import Score

from tunesmith.core.constants import pitch_from_name, pitch_name
from tunesmith.core.errors import UserError
from tunesmith.representations import _grid
from tunesmith.representations.base import LearnedVocabRepresentation

UNK = "<unk>"
SPECIAL_TOKENS = (*_grid.SPECIALS, UNK)
REST = "R"
CHORD_BASE = 60  # chords are voiced upward from octave 4 (C4 = MIDI 60)

Event = tuple[str, int]  # (symbol, duration in steps)


@functools.lru_cache(maxsize=4096)
def _normal_order_cached(pcs: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(normal_order(pcs))


def normal_order(pitch_classes: Iterable[int]) -> list[int]:
    """Normal order of a pitch-class set (Forte): the rotation of the sorted classes with the
    smallest span, ties broken by the smallest intervals from the first class, left to right, then
    by the lowest first class. [4, 7, 11] -> [4, 7, 11]; [2, 7, 11] -> [7, 11, 2]."""
    pcs = sorted({int(pc) % 12 for pc in pitch_classes})
    if len(pcs) < 2:
        return pcs
    rotations = [pcs[i:] + pcs[:i] for i in range(len(pcs))]

    def key(rotation: list[int]) -> tuple[int, ...]:
        intervals = [(pc - rotation[0]) % 12 for pc in rotation]
        return (intervals[-1], *intervals[1:-1], rotation[0])

    return min(rotations, key=key)


@functools.lru_cache(maxsize=1024)
def format_quarters(steps: int, steps_per_quarter: int) -> str:
    """Duration text of a token: quarters as a decimal when exact in binary ("0.25"), else "a/b"."""
    value = Fraction(steps, steps_per_quarter)
    if value.denominator & (value.denominator - 1) == 0:  # power of two: the float is exact
        return repr(float(value))
    return f"{value.numerator}/{value.denominator}"


def chord_pitches(pitch_classes: list[int]) -> list[int]:
    """MIDI pitches of a chord in normal order, in close position from octave 4."""
    pitches = [CHORD_BASE + pitch_classes[0]]
    for pc in pitch_classes[1:]:
        pitches.append(pitches[-1] + (pc - pitches[-1]) % 12)
    return pitches


@functools.lru_cache(maxsize=8192)
def _voice(symbol: str) -> tuple[int, ...]:
    """MIDI pitches of a note or chord symbol ('E4' -> [64], '4.7.11' -> [64, 67, 71]); UserError if bad."""
    try:
        if "." in symbol:
            classes = [int(pc) for pc in symbol.split(".")]
            if len(set(classes)) == len(classes) and all(0 <= pc < 12 for pc in classes):
                return tuple(chord_pitches(classes))
        else:
            pitch = pitch_from_name(symbol)
            if 0 <= pitch < 128 and pitch_name(pitch) == symbol:
                return (pitch,)
    except ValueError:
        pass
    raise UserError(f"bad notes symbol {symbol!r}: not a note name, a chord like 4.7.11, or R")


@dataclass(frozen=True)
class NotesConfig:
    """steps_per_quarter: quantization grid; durations: token durations in quarters (must include
    one step, 1/steps_per_quarter); tracks: track indices to read (None: every pitched track;
    drums and missing indices are ignored); max_chord_size: most pitch classes in a chord token."""

    steps_per_quarter: int = 4
    durations: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
    tracks: tuple[int, ...] | None = None
    max_chord_size: int = 4

    def __post_init__(self) -> None:
        _grid.check_positive("steps_per_quarter", self.steps_per_quarter)
        object.__setattr__(self, "durations", tuple(float(d) for d in self.durations))
        if self.tracks is not None:
            object.__setattr__(self, "tracks", tuple(int(t) for t in self.tracks))
        steps = [d * self.steps_per_quarter for d in self.durations]
        if not steps or any(s < 0.5 or abs(s - round(s)) > 1e-6 for s in steps):
            raise UserError(f"durations must be positive multiples of 1/{self.steps_per_quarter} quarter")
        if 1 not in {round(s) for s in steps}:
            raise UserError(f"durations must include one grid step, {1 / self.steps_per_quarter} quarter")
        if not 2 <= self.max_chord_size <= 12:
            raise UserError(f"max_chord_size must be between 2 and 12, not {self.max_chord_size}")


class NotesRepresentation(LearnedVocabRepresentation):
    """Note / chord / rest tokens with durations; see the module docstring."""

    name = "notes"
    Config = NotesConfig
    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        spq = self.config.steps_per_quarter
        self.grid_steps = np.unique([round(d * spq) for d in self.config.durations]).astype(np.int64)
        self._grid_list = self.grid_steps.tolist()
        self._set_vocab(list(SPECIAL_TOKENS))
        self.fitted = False  # True once fit() or load_state() gave a vocabulary (even an empty one)

    # ----- vocabulary -----

    def _set_vocab(self, vocab: list[str]) -> None:
        if tuple(vocab[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS or len(set(vocab)) != len(vocab):
            raise UserError("a notes vocabulary must start with <pad> <bos> <eos> <unk> and hold no repeats")
        self._vocab = list(vocab)
        self._index = {token: i for i, token in enumerate(vocab)}
        by_symbol: dict[str, list[int]] = {}
        for token in vocab[len(SPECIAL_TOKENS):]:
            symbol, steps = self._parse(token)
            if symbol != REST:
                _voice(symbol)  # a saved vocabulary may be corrupt: fail here, not at decode
            by_symbol.setdefault(symbol, []).append(steps)
        self._known_steps = {s: np.array(sorted(v), np.int64) for s, v in by_symbol.items()}
        # Parsed once here so decoding is a lookup per token.
        n_special = len(SPECIAL_TOKENS)
        self._events_by_id = [None] * n_special + [self._parse(t) for t in vocab[n_special:]]

    def fit(self, scores: Iterable[Score]) -> NotesRepresentation:
        """Vocabulary = specials + every token of `scores`, sorted; replaces any earlier one."""
        tokens = {self._text(event) for score in scores for event in self.events(score)}
        self._set_vocab([*SPECIAL_TOKENS, *sorted(tokens)])
        self.fitted = True
        return self

    def state(self) -> dict[str, Any]:
        return {"vocab": self.vocab} if self.fitted else {}

    def load_state(self, state: dict[str, Any]) -> None:
        if "vocab" in state:
            self._set_vocab(list(state["vocab"]))
            self.fitted = True

    # ----- tokens <-> events -----

    def _text(self, event: Event) -> str:
        return f"{event[0]}_{format_quarters(event[1], self.config.steps_per_quarter)}"

    def _parse(self, token: str) -> Event:
        symbol, _, duration = token.rpartition("_")
        try:
            steps = Fraction(duration) * self.config.steps_per_quarter
        except (ValueError, ZeroDivisionError):
            raise UserError(f"bad notes token {token!r}: no duration") from None
        if not symbol or steps.denominator != 1 or steps <= 0:
            raise UserError(f"bad notes token {token!r}: duration not on the grid")
        return symbol, int(steps)

    def _map(self, event: Event) -> Event | None:
        """The vocabulary's stand-in for an event (module docstring), or None for `<unk>`."""
        if self._text(event) in self._index:
            return event
        known = self._known_steps.get(event[0])
        if known is None:
            return None
        return event[0], int(known[np.argmin(np.abs(known - event[1]))])

    # ----- the reduction -----

    def events(self, score: Score) -> list[Event]:
        """The (symbol, steps) sequence of `score` before any vocabulary mapping."""
        table = _grid.step_table(score, self.config.steps_per_quarter, pitched_only=True)
        if self.config.tracks is not None:
            table = _grid.select(table, np.isin(table["track"], self.config.tracks))
        order = np.lexsort((table["pitch"], table["start"]))
        pitch, start, end = table["pitch"][order].tolist(), table["start"][order], table["end"][order]
        onsets, first = np.unique(start, return_index=True)
        longest = np.maximum.reduceat(end - start, first) if len(first) else first
        bounds = np.r_[first, len(start)]
        events: list[Event] = []
        cursor = 0
        for i, onset in enumerate(onsets.tolist()):
            events += self._rests(onset - cursor)
            gap_to_next = onsets[i + 1] - onset if i + 1 < len(onsets) else longest[i]
            steps = self._floor(min(int(longest[i]), int(gap_to_next)))
            events.append((self._symbol(pitch[bounds[i]: bounds[i + 1]]), steps))
            cursor = onset + steps
        return events

    def _floor(self, steps: int) -> int:
        """The longest grid duration not longer than `steps` (>= 1)."""
        return self._grid_list[bisect.bisect_right(self._grid_list, steps) - 1]

    def _rests(self, gap: int) -> list[Event]:
        rests = []
        while gap > 0:
            rests.append((REST, self._floor(gap)))
            gap -= rests[-1][1]
        return rests

    def _symbol(self, pitches: list[int]) -> str:
        """Note name or chord normal order of the distinct pitches of one onset."""
        distinct = sorted(set(pitches))
        classes: list[int] = []
        for p in distinct:
            if p % 12 not in classes and len(classes) < self.config.max_chord_size:
                classes.append(p % 12)
        if len(classes) == 1:
            return pitch_name(distinct[0])
        return ".".join(str(pc) for pc in _normal_order_cached(tuple(sorted(classes))))

    def _require_vocab(self) -> None:
        if not self.fitted:
            raise UserError("the notes representation has no vocabulary yet: call fit(scores) first")

    # ----- the contract -----

    def encode(self, score: Score) -> np.ndarray:
        """Score -> (n_tokens,) int64 ids; `<unk>` (3) for what the vocabulary cannot stand in for."""
        self._require_vocab()
        mapped = (self._map(event) for event in self.events(score))
        return np.array([self.unk_id if e is None else self._index[self._text(e)] for e in mapped], np.int64)

    def decode(self, array: np.ndarray) -> Score:
        """(n,) ids -> one piano track at `self.tpq`; special ids are skipped."""
        ids = _grid.as_int_array(array, "notes tokens", 1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise UserError(f"notes token ids must lie in 0..{self.vocab_size - 1}")
        return self._score([self._events_by_id[i] for i in ids.tolist() if i >= len(SPECIAL_TOKENS)])

    def canonical(self, score: Score) -> Score:
        """The reduction of the module docstring, mapped to the vocabulary, as decode writes it."""
        self._require_vocab()
        mapped = (self._map(event) for event in self.events(score))
        return self._score([e for e in mapped if e is not None])

    def span(self, array: np.ndarray) -> int:
        """Ticks the tokens cover: the sum of their durations, rests included."""
        ids = _grid.as_int_array(array, "notes tokens", 1)
        steps = sum(self._events_by_id[i][1] for i in ids.tolist() if len(SPECIAL_TOKENS) <= i < self.vocab_size)
        return steps * (self.tpq // self.config.steps_per_quarter)

    @property
    def tpq(self) -> int:
        """Ticks per quarter of decoded and canonical scores."""
        return _grid.output_tpq(self.config.steps_per_quarter)

    def _score(self, events: list[Event]) -> Score:
        """One track from sequential events: notes and chords at a running cursor."""
        pitches, starts, ends = [], [], []
        cursor = 0
        for symbol, steps in events:
            if symbol != REST:
                voiced = _voice(symbol)
                pitches += voiced
                starts += [cursor] * len(voiced)
                ends += [cursor + steps] * len(voiced)
            cursor += steps
        ticks = self.tpq // self.config.steps_per_quarter
        track = _grid.make_step_track(pitches, starts, ends, _grid.DEFAULT_VELOCITY, ticks, name="piano")
        return _grid.score_with_tracks([track], self.tpq)
