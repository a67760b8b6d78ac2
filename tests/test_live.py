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
