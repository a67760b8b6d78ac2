"""What the player played, in seconds, and the beat it follows: the raw material of a live primer.

`Recorder` keeps the notes of the current phrase (start and end in seconds on the session clock) and the
notes still held; `Tempo` keeps the beat: a fixed `bpm`, or the MIDI clock (24 pulses per quarter) while one
is running. `phrase_score` turns a phrase into a `Score` in ticks on that beat grid, anchored at the
phrase's first note (or at the clock's last downbeat before it), 4/4: what `generate_batches` continues.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from symusic import Score

from tunesmith.core.constants import DEFAULT_TPQ
from tunesmith.core.score import make_track, new_score

CLOCKS_PER_BEAT = 24  # MIDI clock pulses per quarter note
MAX_NOTES = 2048  # a phrase keeps at most this many notes (the oldest go first)


@dataclass(frozen=True)
class PlayedNote:
    pitch: int
    velocity: int
    start: float  # seconds, session clock
    end: float


class Recorder:
    """Notes of the current phrase and the ones still held."""

    def __init__(self) -> None:
        self.notes: deque[PlayedNote] = deque(maxlen=MAX_NOTES)
        self.held: dict[int, tuple[int, float]] = {}  # pitch -> (velocity, start)
        self.last_event: float | None = None

    def note_on(self, pitch: int, velocity: int, now: float) -> None:
        if pitch in self.held:  # a repeated note-on ends the previous one
            self.note_off(pitch, now)
        self.held[pitch] = (velocity, now)
        self.last_event = now

    def note_off(self, pitch: int, now: float) -> None:
        if pitch in self.held:
            velocity, start = self.held.pop(pitch)
            self.notes.append(PlayedNote(pitch, velocity, start, max(now, start + 1e-3)))
            self.last_event = now

    def silent_since(self) -> float | None:
        """When the player last released a key, if nothing is held and something was played."""
        return None if self.held or not self.notes else self.last_event

    def first_start(self) -> float | None:
        return self.notes[0].start if self.notes else None

    def clear(self) -> None:
        self.notes.clear()
        self.last_event = None


class Tempo:
    """The beat: `bpm` until a MIDI clock runs (a pulse in the last half second), then the clock's."""

    def __init__(self, bpm: float) -> None:
        self.bpm = bpm
        self.pulses: deque[float] = deque(maxlen=CLOCKS_PER_BEAT + 1)
        self.count = 0  # pulses since the last start
        self.downbeat: float | None = None  # time of the last pulse that began a beat

    def pulse(self, now: float) -> None:
        if self.count % CLOCKS_PER_BEAT == 0:
            self.downbeat = now
        self.pulses.append(now)
        self.count += 1

    def start(self) -> None:
        self.pulses.clear()
        self.count, self.downbeat = 0, None

    def from_clock(self, now: float) -> bool:
        return len(self.pulses) >= 2 and now - self.pulses[-1] < 0.5

    def beat_seconds(self, now: float) -> float:
        if self.from_clock(now):
            return (self.pulses[-1] - self.pulses[0]) / (len(self.pulses) - 1) * CLOCKS_PER_BEAT
        return 60.0 / self.bpm

    def anchor(self, first_note: float, now: float) -> float:
        """Where the beat grid starts: the clock's last downbeat at or before the phrase, else its first note."""
        if self.from_clock(now) and self.downbeat is not None:
            beat = self.beat_seconds(now)
            return self.downbeat - math.ceil(max(0.0, self.downbeat - first_note) / beat) * beat
        return first_note

    def next_beat(self, anchor: float, at_least: float, beat: float) -> float:
        """The first grid beat at or after `at_least`."""
        return anchor + math.ceil(max(0.0, at_least - anchor) / beat - 1e-9) * beat


def phrase_score(notes: list[PlayedNote], anchor: float, beat: float, tpq: int = DEFAULT_TPQ) -> Score:
    """The notes as a one-track piano score in ticks: second `anchor` is tick 0, `beat` seconds a quarter."""
    score = new_score(tpq, qpm=60.0 / beat)

    def tick(seconds: float) -> int:
        return max(0, round((seconds - anchor) / beat * tpq))

    starts = [tick(n.start) for n in notes]
    durations = [max(1, tick(n.end) - s) for n, s in zip(notes, starts, strict=True)]
    score.tracks.append(make_track([n.pitch for n in notes], starts, durations,
                                   [max(1, min(127, n.velocity)) for n in notes], name="played"))
    return score
