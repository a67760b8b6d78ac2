"""`tunesmith live` driven through in-process ports and simulated time: what comes out for a given input."""

from __future__ import annotations

import pytest

mido = pytest.importorskip("mido", reason="the live extra (mido) is not installed")

from tunesmith.core.errors import UserError  # noqa: E402
from tunesmith.live.answer import Answerer, AnswerNote, AnswerOptions  # noqa: E402
from tunesmith.live.session import LiveConfig, LiveSession  # noqa: E402


class SimClock:
    """Simulated seconds: `sleep` advances them."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class ScriptedInput:
    """An input port that delivers (time, message) pairs once the clock reaches their time."""

    def __init__(self, clock: SimClock, script: list[tuple[float, mido.Message]]) -> None:
        self.clock, self.script = clock, sorted(script, key=lambda pair: pair[0])

    def iter_pending(self):
        while self.script and self.script[0][0] <= self.clock.now:
            yield self.script.pop(0)[1]


class RecordingOutput:
    def __init__(self, clock: SimClock) -> None:
        self.clock, self.sent = clock, []

    def send(self, message) -> None:
        self.sent.append((round(self.clock.now, 4), message))

    def notes(self, kind: str = "note_on") -> list[tuple[float, int]]:
        return [(t, m.note) for t, m in self.sent if m.type == kind]


def melody(pitches: list[int], beat: float, start: float = 0.0, length: float = 0.9) -> list:
    """Note on/off pairs, one pitch per beat."""
    script = []
    for i, pitch in enumerate(pitches):
        script.append((start + i * beat, mido.Message("note_on", note=pitch, velocity=90)))
        script.append((start + (i + length) * beat, mido.Message("note_off", note=pitch)))
    return script


def run(answer, script, until: float, **config):
    clock = SimClock()
    out = RecordingOutput(clock)
    session = LiveSession(answer, ScriptedInput(clock, script), out, LiveConfig(poll_s=1 / 256, **config), clock=clock)
    session.run(stop=lambda: clock.now >= until, sleep=clock.sleep)
    return session, out


def fixed_answer(phrase, cancelled=None):
    fixed_answer.phrases.append(phrase)
    return [AnswerNote(72, 100, 0.0, 1.0), AnswerNote(74, 90, 1.0, 0.5), AnswerNote(76, 80, 2.0, 1.0)]


fixed_answer.phrases = []


def test_answers_on_the_pause_beat_in_tempo():
    fixed_answer.phrases.clear()
    # 120 bpm: four quarter notes from t=0; the last is released at 1.95 s; 2 beats of silence -> 2.95 s,
    # next grid beat 3.0 s
    session, out = run(fixed_answer, melody([60, 62, 64, 65], 0.5, length=0.9), until=6.0, bpm=120, wait_beats=2)
    assert out.notes("note_on") == [(3.0, 72), (3.5, 74), (4.0, 76)]
    assert [n for _, n in out.notes("note_off")] == [72, 74, 76]
    phrase = fixed_answer.phrases[0]
    assert phrase.tpq == 480 and [n.pitch for n in phrase.tracks[0].notes] == [60, 62, 64, 65]
    assert [n.time for n in phrase.tracks[0].notes] == [0, 480, 960, 1440]
    assert session.answers[0].first_note_out - session.answers[0].pause_end < 0.01


def test_nothing_comes_out_while_the_player_keeps_playing():
    _, out = run(fixed_answer, melody([60, 62, 64, 65, 67, 69], 0.5), until=3.2, wait_beats=2)
    assert out.notes() == []


def test_follows_the_midi_clock_tempo():
    beat = 0.6  # 100 bpm from the clock, while --bpm says 120
    clock_script = [(i * beat / 24, mido.Message("clock")) for i in range(int(8 / (beat / 24)))]
    _, out = run(fixed_answer, clock_script + melody([60, 64, 67], beat), until=8.0, bpm=120, wait_beats=1)
    ons = [t for t, _ in out.notes()]
    assert ons[1] - ons[0] == pytest.approx(beat, abs=0.011) and ons[2] - ons[0] == pytest.approx(2 * beat, abs=0.011)
    assert ons[0] == pytest.approx(4 * beat, abs=0.011)  # released at beat 2.9, +1 beat of silence -> beat 4


def test_a_key_during_the_answer_stops_it():
    script = melody([60, 62], 0.5) + [(2.6, mido.Message("note_on", note=50, velocity=80))]
    _, out = run(fixed_answer, script, until=3.5, wait_beats=2)
    ons, offs = out.notes("note_on"), out.notes("note_off")
    assert [n for _, n in ons] == [72, 74]  # 76 (due at 3.0 s) never sounds
    assert sorted(n for _, n in offs) == [72, 74]


def test_stop_sends_all_notes_off_on_every_channel():
    _, out = run(fixed_answer, melody([60], 0.5), until=2.2, wait_beats=1)
    cc = [m for _, m in out.sent if m.type == "control_change"]
    assert len(cc) == 16 and {m.control for m in cc} == {123} and {m.channel for m in cc} == set(range(16))
    assert out.sent[-17][1].type == "note_off"  # the sounding answer note first


def test_speculation_starts_the_model_before_the_pause_ends():
    calls = []

    def slow_answer(phrase, cancelled=None):
        calls.append(clock_at[0]())
        return fixed_answer(phrase)

    clock = SimClock()
    clock_at = [clock]
    out = RecordingOutput(clock)
    session = LiveSession(slow_answer, ScriptedInput(clock, melody([60, 62], 0.5)), out,
                          LiveConfig(poll_s=1 / 256, wait_beats=2), clock=clock, expected_s=0.4)
    session.run(stop=lambda: clock.now >= 3.0, sleep=clock.sleep)
    pause_end = session.answers[0].pause_end
    assert pause_end == pytest.approx(2.0) and calls[0] == pytest.approx(pause_end - 0.9, abs=0.01)
    assert out.notes()[0] == (2.0, 72)


def test_a_key_cancels_the_answer_in_the_making():
    from concurrent.futures import Executor, Future

    class Holding(Executor):
        """Never runs the call: the answer stays in the making."""

        def submit(self, fn, /, *args, **kwargs):
            self.args = args
            return Future()

    clock, executor = SimClock(), Holding()
    script = melody([60, 62], 0.5) + [(1.5, mido.Message("note_on", note=64, velocity=80))]
    session = LiveSession(fixed_answer, ScriptedInput(clock, script), RecordingOutput(clock),
                          LiveConfig(poll_s=1 / 256, wait_beats=2), clock=clock, executor=executor, expected_s=0.4)
    session.run(stop=lambda: clock.now >= 1.4, sleep=clock.sleep)
    cancel = executor.args[-1]
    assert not cancel.is_set()
    session.run(stop=lambda: clock.now >= 1.6, sleep=clock.sleep)
    assert cancel.is_set() and session.pending is None


@pytest.fixture(scope="module")
def lstm_answerer(tmp_path_factory):
    from tunesmith.models.checkpoint import load_model

    return Answerer(load_model("lstm-bach"), AnswerOptions(bars=2, primer_bars=2), tmp_path_factory.mktemp("live"))


def test_a_real_model_answers_with_two_bars_in_time(lstm_answerer):
    script = melody([60, 62, 64, 65, 67, 65, 64, 62], 0.5)
    session, out = run(lstm_answerer, script, until=12.0, bpm=120, wait_beats=2)
    ons, offs = out.notes("note_on"), out.notes("note_off")
    assert ons and ons[0][0] == pytest.approx(session.answers[0].pause_end)
    assert all(ons[0][0] <= t < ons[0][0] + 2 * 4 * 0.5 for t, _ in ons)  # within 2 bars of 4/4 at 120 bpm
    assert sorted(n for _, n in ons) == sorted(n for _, n in offs)  # every note released
    assert all(0 <= n < 128 for _, n in ons)


def test_a_cancelled_answer_stops_inside_the_model(lstm_answerer):
    from tunesmith.live.answer import Cancelled
    from tunesmith.live.phrase import PlayedNote, phrase_score

    phrase = phrase_score([PlayedNote(60, 80, 0.0, 0.4), PlayedNote(64, 80, 0.5, 0.9)], 0.0, 0.5)
    calls = []
    with pytest.raises(Cancelled):
        lstm_answerer(phrase, cancelled=lambda: calls.append(1) or len(calls) > 3)
    assert len(calls) == 4  # it stopped at the fourth network call


def test_a_family_that_cannot_continue_is_refused():
    from tunesmith.models.checkpoint import load_model

    with pytest.raises(UserError, match="does not"):
        Answerer(load_model("jsb-best"), AnswerOptions(top_k=5))


def test_no_midi_system_is_one_sentence(monkeypatch):
    import tunesmith.live.ports as ports

    class Broken:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("MidiInAlsa::initialize: error creating ALSA sequencer client object.")

    monkeypatch.setattr(mido, "Backend", Broken)
    with pytest.raises(UserError, match="no MIDI system is available") as info:
        ports.port_lines()
    assert "\n" not in str(info.value)


# ---- real MIDI ports: a JACK dummy server (or the machine's own MIDI system) -------------------------


@pytest.fixture(scope="module")
def midi_system():
    """A working MIDI backend: the machine's, else a `jackd -d dummy` started here (skip without either)."""
    import os
    import shutil
    import subprocess
    import time

    from tunesmith.live.ports import backend

    try:
        yield backend()
        return
    except UserError:
        pass
    if shutil.which("jackd") is None:
        pytest.skip("no MIDI system and no jackd to start a dummy one (apt-get install jackd2; make test does it)")
    env = {**os.environ, "JACK_NO_AUDIO_RESERVATION": "1"}
    server = subprocess.Popen(["jackd", "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "1024"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                yield backend()
                break
            except UserError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.skip("jackd -d dummy did not start")
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(10)


def test_real_ports_carry_the_answer_in_time(midi_system):
    import time

    from tunesmith.live.ports import open_ports

    inport, outport = open_ports(None, None)  # the virtual 'tunesmith in' / 'tunesmith out'
    names = midi_system.get_output_names(), midi_system.get_input_names()
    player = midi_system.open_output(next(n for n in names[0] if "tunesmith in" in n))
    ear = midi_system.open_input(next(n for n in names[1] if "tunesmith out" in n))
    session = LiveSession(fixed_answer, inport, outport, LiveConfig(bpm=240, wait_beats=1))
    heard, start = [], time.monotonic()

    def play_and_listen() -> bool:
        now = time.monotonic() - start
        for i, pitch in enumerate((60, 64)):  # two quarter notes at 240 bpm, released at 0.2 and 0.45 s
            if i * 0.25 <= now and not played[2 * i]:
                player.send(mido.Message("note_on", note=pitch, velocity=90))
                played[2 * i] = True
            if i * 0.25 + 0.2 <= now and not played[2 * i + 1]:
                player.send(mido.Message("note_off", note=pitch))
                played[2 * i + 1] = True
        heard.extend((time.monotonic() - start, m) for m in ear.iter_pending())
        return now > 2.0

    played = [False] * 4
    try:
        session.run(stop=play_and_listen)
        time.sleep(0.1)
        heard.extend((time.monotonic() - start, m) for m in ear.iter_pending())  # what stopping sent
    finally:
        for port in (inport, outport, player, ear):
            port.close()
    ons = [(t, m.note) for t, m in heard if m.type == "note_on"]
    assert [n for _, n in ons] == [72, 74, 76]
    # released at 0.45 s, one beat (0.25 s) of silence, next beat of the grid: 0.75 s; then a beat apart
    assert ons[0][0] == pytest.approx(0.75, abs=0.1) and ons[1][0] - ons[0][0] == pytest.approx(0.25, abs=0.05)
    assert sum(m.type == "control_change" and m.control == 123 for _, m in heard) == 16  # all notes off


def test_a_pitch_struck_again_while_it_sounds_is_released_first():
    def overlapping(phrase, cancelled=None):  # 72 for two beats, struck again after one: as models write
        return [AnswerNote(72, 100, 0.0, 2.0), AnswerNote(72, 90, 1.0, 2.0), AnswerNote(64, 80, 1.0, 0.5)]

    session, out = run(overlapping, melody([60, 62], 0.5), until=10.0, bpm=120, wait_beats=2)
    events = [(t, m.type, m.note) for t, m in out.sent if m.type in ("note_on", "note_off") and m.note == 72]
    start = session.answers[0].pause_end
    assert [(kind, round(t - start, 2)) for t, kind, _ in events] == [
        ("note_on", 0.0), ("note_off", 0.5), ("note_on", 0.5), ("note_off", 1.5)]  # 0.5 s per beat
