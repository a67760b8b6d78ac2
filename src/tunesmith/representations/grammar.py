"""Token grammars: which next tokens keep a sequence decodable, for constrained decoding.

A grammar holds, for each of a batch of sequences, a small parse state (a few integers per row),
updated once per token (O(1): no re-parsing of the prefix), and gives the allowed-next-token mask
(batch, vocab) bool for that state. The sampler (`generation/sampling.py`) sets the logits of the
tokens it forbids to -inf, so every sampled sequence decodes without dropped tokens;
`count_invalid` replays a sequence (a token the grammar forbids is counted and skipped: the state
stays), which measures how often unconstrained sampling breaks the grammar.

Grammars per token representation (`grammar_for`):
- `events` (miditok REMI / TSD, `EventsGrammar`): the order the tokenizer writes and its decoder needs.
  REMI: `Bar`, then `Position` (strictly increasing inside a bar; a new `Bar` resets it), then notes:
  [`Program`] `Pitch` [`Velocity`] `Duration`; after a note: another note at that position, a later
  `Position` or a `Bar`; `Tempo` only right after a `Position`. TSD: `TimeShift` instead of
  Bar / Position (a `TimeShift` follows another only after the longest one, as the encoder splits long
  gaps), `Tempo` at the start or after a `TimeShift`. At one time, notes come as the encoder sorts them:
  programs non-decreasing in the encoder's track order (program 0, drums `Program_-1`, program 1,
  ... 127: drums sort as program 0.5), pitches non-decreasing within a program;
  `PitchDrum` only after `Program_-1` (without programs never: the encoder drops drums); pitches only
  in the representation's ranges (miditok's vocabulary holds `Pitch_{pitch_high + 1}`, which `encode`
  never writes, and its decoder drops drum pitches outside the pitch range). Special tokens are never allowed. miditok's
  decoder drops a `Pitch` not followed by its `Velocity` / `Duration`, which this order rules out.
  Time-signature tokens are not part of these tokenizers (`events.build_tokenizer` turns them off).
  With bar countdown tokens (`countdown: K`, `representations/countdown.py`) each row also holds a window
  [`low`, `high`] of bars left that its next bar token may announce: `Bar_k` when low <= k <= high,
  `Bar_None` ("K or more") when high >= K. From the start any consistent countdown is allowed (what
  `encode` writes); after `Bar_k` the next must be `Bar_{k-1}`, after `Bar_None` `Bar_None` or
  `Bar_{K-1}`; after `Bar_0` no bar token, and `EOS` after a complete note, after which only `EOS`.
  A generator narrows the window (`expect`) to fix the piece's length, or to a range of lengths.
- `notes`: every token is a whole event except `<unk>`, which decode skips: a constant mask.
- `grid`: none needed: every symbol takes one step and decodes (`_` after `r` holds the rest, a
  leading `_` is silence like `r`), so no sequence of non-special tokens loses anything.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

# token kinds
SPECIAL, BAR, POSITION, PITCH, DRUM, VELOCITY, DURATION, PROGRAM, TEMPO, SHIFT = range(10)
KINDS = {"Bar": BAR, "Position": POSITION, "Pitch": PITCH, "PitchDrum": DRUM, "Velocity": VELOCITY,
         "Duration": DURATION, "Program": PROGRAM, "Tempo": TEMPO, "TimeShift": SHIFT}
SPECIALS = ("PAD", "BOS", "EOS", "MASK")
# parse phases (what the last token was)
(START, AFTER_BAR, AFTER_POSITION, AFTER_TEMPO, AFTER_PROGRAM, AFTER_DRUM_PROGRAM, AFTER_PITCH,
 AFTER_VELOCITY, AFTER_NOTE, AFTER_SHIFT, AFTER_MAX_SHIFT, DONE) = range(12)
N_PHASES = 12
NONE = -2  # no program / position yet at this time
UNBOUNDED = 1 << 40  # countdown window: no upper limit on the bars left


@dataclass
class GrammarState:
    """Per row (batch,) int64: `phase`; `time` (REMI position in the bar, -1 after a Bar); `program`
    (its order key, see `EventsGrammar`) and `floor` (the last program and pitch at the current time:
    the next ones may not go below); `low` / `high`: the bars left the next bar token may announce
    (countdown grammars only; see the module docstring)."""

    phase: np.ndarray
    time: np.ndarray
    program: np.ndarray
    floor: np.ndarray
    low: np.ndarray
    high: np.ndarray

    def repeated(self, batch: int) -> GrammarState:
        """This one-row state copied to `batch` rows."""
        return GrammarState(*(np.repeat(getattr(self, f.name)[:1], batch) for f in fields(self)))


class ConstantGrammar:
    """Every token allowed except a fixed set, whatever came before (e.g. `notes`: `<unk>`)."""

    def __init__(self, vocab_size: int, banned: list[int]) -> None:
        self.mask = np.ones(vocab_size, bool)
        self.mask[banned] = False

    def start(self, batch: int) -> GrammarState:
        return GrammarState(*(np.zeros(batch, np.int64) for _ in fields(GrammarState)))

    def allowed(self, state: GrammarState) -> np.ndarray:
        """(batch, vocab) bool."""
        return np.broadcast_to(self.mask, (len(state.phase), len(self.mask)))

    def advance(self, state: GrammarState, ids: np.ndarray) -> np.ndarray:
        """Whether each row's token (batch,) was allowed; nothing else to track."""
        return self.mask[np.asarray(ids)]

    def at_boundary(self, state: GrammarState) -> np.ndarray:
        """(batch,) bool: where a piece may end (every token is a whole event here)."""
        return np.ones(len(state.phase), bool)


def _split(token: str) -> tuple[str, str]:
    kind, _, value = token.partition("_")
    return kind, value


def _steps(value: str) -> int:
    """miditok's "beats.steps.resolution" duration text -> steps."""
    beats, steps, resolution = (int(v) for v in value.split("."))
    return beats * resolution + steps


class EventsGrammar(ConstantGrammar):
    """The REMI / TSD grammar of the module docstring, over a miditok vocabulary (token strings by id)."""

    def __init__(self, vocab: list[str], tokenizer: str, pitch_range: tuple[int, int],
                 drum_range: tuple[int, int], countdown: int = 0) -> None:
        kind = np.full(len(vocab), SPECIAL, np.int64)
        value = np.zeros(len(vocab), np.int64)
        for i, token in enumerate(vocab):
            name, text = _split(token)
            if name in SPECIALS:
                continue
            if name not in KINDS:
                raise ValueError(f"no grammar for miditok token {token!r}")
            kind[i] = KINDS[name]
            if kind[i] == BAR:  # bars left it announces: Bar_k -> k, Bar_None -> countdown (= "that or more")
                value[i] = countdown if text == "None" else int(text)
            elif kind[i] in (POSITION, PITCH, DRUM):
                value[i] = int(text)
            elif kind[i] == PROGRAM:  # the encoder's track order: program 0, drums, program 1, ...
                value[i] = 1 if int(text) == -1 else 2 * int(text)
            elif kind[i] == SHIFT:
                value[i] = _steps(text)
        self.kind, self.value, self.remi = kind, value, tokenizer == "REMI"
        drums = kind == DRUM
        low, high = np.where(drums, drum_range[0], pitch_range[0]), np.where(drums, drum_range[1], pitch_range[1])
        usable = ~np.isin(kind, (PITCH, DRUM)) | ((value >= low) & (value <= high))
        self.phase_mask = self._phase_table()[:, kind] & usable[None]
        self.next_phase = self._next_phases()
        self.is_position, self.is_program = kind == POSITION, kind == PROGRAM
        self.is_note = (kind == PITCH) | (kind == DRUM)
        self.resets = np.isin(kind, (BAR, POSITION, SHIFT))  # a new time: programs and pitches start over
        self.countdown, self.is_bar = countdown, kind == BAR
        self.eos_id = vocab.index("EOS_None") if countdown else -1
        if countdown:  # EOS: allowed by `allowed` after the last bar's notes; afterwards only EOS
            self.next_phase[self.eos_id] = DONE
            self.phase_mask[DONE] = False
            self.phase_mask[DONE, self.eos_id] = True

    def _phase_table(self) -> np.ndarray:
        """(phase, kind) bool: the kinds allowed after each phase."""
        programs = bool((self.kind == PROGRAM).any())
        note = {PROGRAM} if programs else {PITCH}
        velocity = bool((self.kind == VELOCITY).any())
        follows = {AFTER_PROGRAM: {PITCH}, AFTER_DRUM_PROGRAM: {DRUM},
                   AFTER_PITCH: {VELOCITY} if velocity else {DURATION}, AFTER_VELOCITY: {DURATION}}
        if self.remi:
            follows |= {START: {BAR}, AFTER_BAR: {BAR, POSITION}, AFTER_POSITION: note | {TEMPO},
                        AFTER_TEMPO: note | {POSITION, BAR}, AFTER_NOTE: note | {POSITION, BAR}}
        else:
            follows |= {START: note | {SHIFT, TEMPO}, AFTER_TEMPO: note | {SHIFT}, AFTER_NOTE: note | {SHIFT},
                        AFTER_SHIFT: note | {TEMPO}, AFTER_MAX_SHIFT: note | {TEMPO, SHIFT}}
        table = np.zeros((N_PHASES, len(KINDS) + 1), bool)
        for phase, kinds in follows.items():
            table[phase, sorted(kinds)] = True
        return table

    def _next_phases(self) -> np.ndarray:
        """(vocab,) the phase after each token (it depends on the token alone)."""
        by_kind = {BAR: AFTER_BAR, POSITION: AFTER_POSITION, TEMPO: AFTER_TEMPO, PROGRAM: AFTER_PROGRAM,
                   PITCH: AFTER_PITCH, DRUM: AFTER_PITCH, VELOCITY: AFTER_VELOCITY, DURATION: AFTER_NOTE,
                   SHIFT: AFTER_SHIFT, SPECIAL: START}
        phases = np.array([by_kind[k] for k in self.kind.tolist()], np.int64)
        phases[(self.kind == PROGRAM) & (self.value == 1)] = AFTER_DRUM_PROGRAM
        shifts = self.kind == SHIFT
        if shifts.any():
            phases[shifts & (self.value == self.value[shifts].max())] = AFTER_MAX_SHIFT
        return phases

    def start(self, batch: int) -> GrammarState:
        full = lambda v: np.full(batch, v, np.int64)  # noqa: E731
        return GrammarState(full(START), full(-1), full(NONE), full(-1), full(0), full(UNBOUNDED))

    def expect(self, state: GrammarState, low: int, high: int) -> None:
        """Countdown grammars: every row's next bar token announces between `low` and `high` bars left
        (`high` < 0: the piece is in its last bar). Bar tokens then count down from there."""
        state.low[:], state.high[:] = low, high

    def allowed(self, state: GrammarState) -> np.ndarray:
        """(batch, vocab) bool: the phase's kinds, later positions, no lower program or pitch."""
        mask = self.phase_mask[state.phase]
        mask &= ~(self.is_position & (self.value <= state.time[:, None]))
        mask &= ~(self.is_program & (self.value < state.program[:, None]))
        mask &= ~(self.is_note & (self.value < state.floor[:, None]))
        if self.countdown:
            mask &= ~(self.is_bar & ~self._in_window(self.value, state.low[:, None], state.high[:, None]))
            mask[:, self.eos_id] |= self._may_end(state)
        return mask

    def _in_window(self, bars_left: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """Whether bar tokens announcing `bars_left` (countdown: `Bar_None`) fit the window."""
        return (bars_left <= high) & ((bars_left >= low) | (bars_left == self.countdown))

    def _may_end(self, state: GrammarState) -> np.ndarray:
        """(batch,) bool: EOS allowed: in the last bar (or after EOS), after a complete note."""
        return ((state.high < 0) & (state.phase == AFTER_NOTE)) | (state.phase == DONE)

    def permits(self, state: GrammarState, ids: np.ndarray) -> np.ndarray:
        """Whether each row's token (batch,) is allowed: `allowed` for those tokens alone, O(1) per row."""
        value = self.value[ids]
        ok = self.phase_mask[state.phase, ids]
        ok &= ~(self.is_position[ids] & (value <= state.time))
        ok &= ~(self.is_program[ids] & (value < state.program))
        ok &= ~(self.is_note[ids] & (value < state.floor))
        if self.countdown:
            ok &= ~(self.is_bar[ids] & ~self._in_window(value, state.low, state.high))
            ok |= (ids == self.eos_id) & self._may_end(state)
        return ok

    def at_boundary(self, state: GrammarState) -> np.ndarray:
        """(batch,) bool: where a piece may end: right after a complete note (its Duration)."""
        return state.phase == AFTER_NOTE

    def advance(self, state: GrammarState, ids: np.ndarray) -> np.ndarray:
        """Feed one token per row (batch,): rows whose token is allowed move on; returns which were."""
        ids = np.asarray(ids, np.int64)
        ok = self.permits(state, ids)
        i, kind, value = ids[ok], self.kind[ids[ok]], self.value[ids[ok]]
        program, floor = state.program[ok], state.floor[ok]
        floor = np.where(self.is_program[i] & (value != program), -1, floor)
        floor = np.where(self.is_note[i], value, floor)
        program = np.where(self.is_program[i], value, program)
        reset = self.resets[i]
        if self.countdown:  # after Bar_k: exactly k - 1 left; after Bar_None: K - 1 or more
            bar, far, low, high = kind == BAR, value == self.countdown, state.low[ok], state.high[ok]
            state.low[ok] = np.where(bar, np.where(far, np.maximum(low, value), value) - 1, low)
            state.high[ok] = np.where(bar, np.where(far, high, value) - 1, high)
        state.time[ok] = np.where(kind == POSITION, value, np.where(kind == BAR, -1, state.time[ok]))
        state.program[ok] = np.where(reset, NONE, program)
        state.floor[ok] = np.where(reset, -1, floor)
        state.phase[ok] = self.next_phase[i]
        return ok


def grammar_for(rep: Any) -> ConstantGrammar | None:
    """The grammar of a token representation (module docstring), or None where every sequence decodes."""
    if hasattr(rep, "grammar"):
        return rep.grammar()
    if rep.name == "notes":
        return ConstantGrammar(rep.vocab_size, [rep.unk_id])
    return None


def count_invalid(grammar: ConstantGrammar, ids: np.ndarray, state: GrammarState | None = None) -> int:
    """Tokens of `ids` (n,) the grammar forbids, replayed from `state` (default: the start); a forbidden
    token is counted and leaves the state as it was. `state` (one row) is advanced in place."""
    state = state if state is not None else grammar.start(1)
    return sum(not grammar.advance(state, np.array([token]))[0] for token in np.asarray(ids).tolist())
