"""`tunesmith live` latency: the time from the end of the player's pause to the answer's first note out,
per shipped generating model, side by side (goal: under 50 ms for the recurrent models on this CPU).

The loop runs for real (real clock, model on its worker thread, 1 ms polling) over in-process ports:
a scripted player plays a 4-note phrase at 120 bpm, pauses 2 beats, waits for the answer's first note,
then plays the next phrase (which also cuts the answer short). Two settings per model:
  speculative  the default: the model starts before the pause ends (when only its expected time is left)
  cold         --no-speculate, no beat alignment: the model starts when the pause ends
"compute" is the model's time per answer (phrase -> primer file -> generate_batches -> notes).

    python benchmarks/live_latency.py [--phrases 3] [--models lstm-bach jsb-best midinet]
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import mido

from tunesmith.live.answer import Answerer, AnswerOptions
from tunesmith.live.command import warm_up
from tunesmith.live.session import LiveConfig, LiveSession

BPM, BEAT = 120.0, 0.5
PHRASES = [[60, 62, 64, 65], [67, 65, 64, 62], [60, 64, 67, 72], [72, 71, 69, 67], [65, 64, 62, 60]]


class Player:
    """An input port: phrase k starts 0.25 s after the answer to phrase k-1 began to sound."""

    def __init__(self, count: int) -> None:
        self.count, self.started, self.script, self.waiting = count, 0, [], False
        self.next_start = time.monotonic() + 0.2

    def iter_pending(self):
        now = time.monotonic()
        if not self.waiting and self.started < self.count and now >= self.next_start:
            pitches = PHRASES[self.started % len(PHRASES)]
            for i, pitch in enumerate(pitches):
                self.script.append((now + i * BEAT, mido.Message("note_on", note=pitch, velocity=90)))
                self.script.append((now + (i + 0.9) * BEAT, mido.Message("note_off", note=pitch)))
            self.started, self.waiting = self.started + 1, True
        while self.script and self.script[0][0] <= now:
            yield self.script.pop(0)[1]

    def answered(self) -> None:
        if self.waiting:
            self.waiting, self.next_start = False, time.monotonic() + 0.25

    def done(self) -> bool:
        return self.started >= self.count and not self.waiting and time.monotonic() > self.next_start


class Listener:
    """An output port that tells the player when an answer starts."""

    def __init__(self, player: Player) -> None:
        self.player = player

    def send(self, message) -> None:
        if message.type == "note_on":
            self.player.answered()


def measure(answerer: Answerer, expected: float, phrases: int, speculate: bool) -> list[tuple[float, float]]:
    """(latency, compute) in seconds for each answered phrase."""
    player = Player(phrases)
    config = LiveConfig(bpm=BPM, wait_beats=2, speculate=speculate, align=speculate)
    with ThreadPoolExecutor(max_workers=1) as executor:
        session = LiveSession(answerer, player, Listener(player), config, executor=executor, expected_s=expected)
        deadline = time.monotonic() + phrases * 15
        session.run(stop=lambda: player.done() or time.monotonic() > deadline)
    return [(a.first_note_out - a.pause_end, a.ready - a.launched) for a in session.answers
            if a.first_note_out is not None and a.ready is not None]


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.1f} / {max(values) * 1000:7.1f}" if values else "      -"


def main() -> None:
    import torch

    from tunesmith.models.checkpoint import load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phrases", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["lstm-bach", "jsb-best", "midinet"])
    args = parser.parse_args()
    print(f"{'model':<12} {'family':<14} {'compute ms':>17} {'speculative ms':>17} {'cold ms':>17}   "
          "(median / max; latency = pause end -> first note out)")
    for name in args.models:
        loaded = load_model(name)
        if loaded.model.cpu_threads:
            torch.set_num_threads(loaded.model.cpu_threads)
        answerer = Answerer(loaded, AnswerOptions(bars=2, primer_bars=2))
        expected = max(warm_up(answerer, BPM), warm_up(answerer, BPM))
        spec, cold = measure(answerer, expected, args.phrases, True), measure(answerer, expected, args.phrases, False)
        compute = [c for _, c in spec + cold]
        print(f"{name:<12} {loaded.name:<14} {ms(compute):>17} {ms([lat for lat, _ in spec]):>17} "
              f"{ms([lat for lat, _ in cold]):>17}   ({len(spec)}+{len(cold)} answers)", flush=True)


if __name__ == "__main__":
    main()
