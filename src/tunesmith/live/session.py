"""The live loop: read the input port, notice the player's pause, answer on the output port in time.

Ports are parameters (anything with mido's `iter_pending()` / `send(msg)`), and so are the clock and the
executor that runs the model, so tests drive the loop with in-process ports and simulated time.

Timing. The beat grid starts at the phrase's first note (or follows the MIDI clock). The pause ends on
the first grid beat at least `wait_beats` beats after the last key was released. The answer is computed
ahead, speculatively: once the silence has lasted long enough that only twice the expected generation
time (the slowest of the last answers) + 100 ms is left before the pause ends, the phrase goes to the
model; a key pressed meanwhile cancels that work (it stops at the model's next network call). So the
answer's first note normally leaves on the pause's last beat; when the model is late it leaves as soon
as it is ready (`align=False`) or on the next grid beat (`align=True`).
A key pressed while the answer plays stops the answer (its notes are released).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field

from tunesmith.core.errors import UserError
from tunesmith.live.answer import AnswerNote
from tunesmith.live.phrase import Recorder, Tempo, phrase_score

log = logging.getLogger(__name__)
DRUM_CHANNEL = 9
LATE_S = 0.03  # an answer ready this soon after the pause's end still starts on it


@dataclass
class LiveConfig:
    wait_beats: float = 2.0  # the pause that asks for an answer, in beats
    bpm: float = 120.0  # the beat when no MIDI clock runs
    channel: int = 0  # output channel (0-15)
    speculate: bool = True  # start the model before the pause ends
    align: bool = True  # a late answer waits for the next beat
    poll_s: float = 0.001


@dataclass
class AnswerRecord:
    """What happened to one answer (seconds on the session clock), for the log and the benchmark."""

    pause_end: float
    launched: float
    ready: float | None = None
    first_note_out: float | None = None
    notes: int = 0


def _message(kind: str, **fields):
    """A mido message (mido is imported here, so importing this module needs no MIDI package)."""
    import mido

    return mido.Message(kind, **fields)


class Immediate(Executor):
    """An executor that runs each call at once (tests, and a deterministic loop)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as error:  # noqa: BLE001 (handed to the loop through the future)
            future.set_exception(error)
        return future


@dataclass
class _Pending:
    future: Future
    record: AnswerRecord
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass
class LiveSession:
    """One call-and-response session over an input and an output port."""

    answer: Callable  # (Score, cancelled: () -> bool) -> list[AnswerNote]
    inport: object
    outport: object
    config: LiveConfig = field(default_factory=LiveConfig)
    clock: Callable[[], float] = time.monotonic
    executor: Executor = field(default_factory=Immediate)
    expected_s: float = 0.0  # expected generation time (updated from each answer)
    say: Callable[[str], None] = log.info

    def __post_init__(self) -> None:
        self.recorder, self.tempo = Recorder(), Tempo(self.config.bpm)
        self.pending: _Pending | None = None
        self.scheduled: list[tuple] = []  # heap of (time, off-first, order, message)
        self.sounding: dict[int, int] = {}  # pitch -> scheduled notes of it that have started, not ended
        self.answers: list[AnswerRecord] = []
        self._order = itertools.count()
        self._recent: list[float] = [self.expected_s]  # generation times of the last answers

    # ---- the loop ---------------------------------------------------------------------------------

    def run(self, stop: Callable[[], bool] = lambda: False, sleep: Callable[[float], None] = time.sleep) -> None:
        """Step until `stop()`; whatever ends it (Ctrl-C included), every note is switched off."""
        try:
            while not stop():
                self.step(self.clock())
                sleep(self.config.poll_s)
        finally:
            self.all_notes_off()

    def step(self, now: float) -> None:
        """Read what arrived, launch or schedule an answer when due, send what is due."""
        for message in self.inport.iter_pending():
            self.receive(message, now)
        pause_end = self._pause_end(now)
        if pause_end is not None:
            self._maybe_launch(now, pause_end)
            self._maybe_schedule(now, pause_end)
        self.flush(now)

    def receive(self, message, now: float) -> None:
        kind = message.type
        if kind == "clock":
            self.tempo.pulse(now)
        elif kind in ("start", "stop"):
            self.tempo.start()
        elif kind in ("note_on", "note_off") and message.channel != DRUM_CHANNEL:
            if kind == "note_on" and message.velocity > 0:
                self.stop_answer(now)
                self.recorder.note_on(message.note, message.velocity, now)
            elif message.note in self.recorder.held:
                self.recorder.note_off(message.note, now)
            else:
                return  # the release of a key pressed before the session began: nothing changed
            self._drop_pending()  # the phrase changed: an answer in the making is for an older one

    def _drop_pending(self) -> None:
        if self.pending is not None:
            self.pending.cancel.set()
            self.pending = None

    # ---- pause and answer --------------------------------------------------------------------------

    def _pause_end(self, now: float) -> float | None:
        silent = self.recorder.silent_since()
        if silent is None:
            return None
        beat = self.tempo.beat_seconds(now)
        anchor = self.tempo.anchor(self.recorder.first_start(), now)
        return self.tempo.next_beat(anchor, silent + self.config.wait_beats * beat, beat)

    def _maybe_launch(self, now: float, pause_end: float) -> None:
        lead = 2 * self.expected_s + 0.1 if self.config.speculate else 0.0
        if self.pending is None and now >= pause_end - lead:
            beat = self.tempo.beat_seconds(now)
            anchor = self.tempo.anchor(self.recorder.first_start(), now)
            phrase = phrase_score(list(self.recorder.notes), anchor, beat)
            record, cancel = AnswerRecord(pause_end, now), threading.Event()
            future = self.executor.submit(self._timed, phrase, record, cancel)
            self.pending = _Pending(future, record, cancel)

    def _timed(self, phrase, record: AnswerRecord, cancel: threading.Event) -> list[AnswerNote]:
        notes = self.answer(phrase, cancelled=cancel.is_set)
        record.ready = self.clock()
        return notes

    def _maybe_schedule(self, now: float, pause_end: float) -> None:
        if self.pending is None or now < pause_end or not self.pending.future.done():
            return
        pending, self.pending = self.pending, None
        beat, grid = self.tempo.beat_seconds(now), self.tempo.anchor(self.recorder.first_start(), now)
        self.recorder.clear()
        try:
            notes = pending.future.result()
        except UserError as error:
            self.say(f"no answer: {error}")
            return
        record = pending.record
        self._recent = [*self._recent[-4:], max(0.0, (record.ready or now) - record.launched)]
        self.expected_s = max(self._recent)
        if now <= pause_end + LATE_S:
            start = pause_end
        else:
            start = self.tempo.next_beat(grid, now, beat) if self.config.align else now
        record.notes = len(notes)
        self.answers.append(record)
        self._schedule(notes, start, beat)

    def _schedule(self, notes: list[AnswerNote], start: float, beat: float) -> None:
        channel = self.config.channel
        for note in notes:
            on = start + note.start * beat
            off = on + max(note.duration * beat - 0.002, 0.001)
            self._push(on, _message("note_on", channel=channel, note=note.pitch, velocity=note.velocity))
            self._push(off, _message("note_off", channel=channel, note=note.pitch, velocity=0))

    def _push(self, when: float, message) -> None:
        # Offs before ons at the same time, so a repeated pitch is released before it sounds again.
        heapq.heappush(self.scheduled, (when, 0 if message.type == "note_off" else 1, next(self._order), message))

    # ---- output ------------------------------------------------------------------------------------

    def flush(self, now: float) -> None:
        """Send every scheduled message that is due. A pitch struck again while it sounds (two overlapping
        notes of one pitch) is released first and struck anew; only the last of its notes' offs is sent,
        so no earlier off cuts the new note short and every note_on has exactly one note_off."""
        while self.scheduled and self.scheduled[0][0] <= now:
            message = heapq.heappop(self.scheduled)[-1]
            count = self.sounding.get(message.note, 0)
            if message.type == "note_on":
                if self.answers and self.answers[-1].first_note_out is None:
                    self.answers[-1].first_note_out = self.clock()
                if count:
                    self.outport.send(_message("note_off", channel=message.channel, note=message.note, velocity=0))
                self.sounding[message.note] = count + 1
            elif count == 0:
                continue  # stopped by stop_answer already
            else:
                self.sounding[message.note] = count - 1
                if count > 1:
                    continue  # an earlier, overlapped note's off: the key was released when struck again
                del self.sounding[message.note]
            self.outport.send(message)

    def stop_answer(self, now: float) -> None:
        """Drop the rest of the answer and release its sounding notes."""
        self.scheduled.clear()
        for pitch in sorted(self.sounding):
            self.outport.send(_message("note_off", channel=self.config.channel, note=pitch, velocity=0))
        self.sounding.clear()

    def all_notes_off(self) -> None:
        """Release everything: the answer's notes, then All Notes Off (CC 123) on every channel."""
        self.stop_answer(self.clock())
        for channel in range(16):
            self.outport.send(_message("control_change", channel=channel, control=123, value=0))
