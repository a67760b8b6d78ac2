"""`tunesmith live`: load a checkpoint, warm it up, open the ports and run the call-and-response loop."""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from tunesmith.core.errors import UserError
from tunesmith.live.answer import Answerer, AnswerOptions
from tunesmith.live.phrase import PlayedNote, phrase_score
from tunesmith.live.session import LiveConfig, LiveSession
from tunesmith.models.distributions import check_temperature

log = logging.getLogger(__name__)


def check_settings(config: LiveConfig, options: AnswerOptions) -> None:
    """UserError (one sentence) for a setting out of range."""
    checks = [
        (0 < config.bpm <= 400 and math.isfinite(config.bpm), f"--bpm must be in (0, 400], got {config.bpm}"),
        (0.25 <= config.wait_beats <= 64, f"--wait-beats must be in [0.25, 64], got {config.wait_beats}"),
        (0 <= config.channel <= 15, f"--channel must be 1-16, got {config.channel + 1}"),
        (1 <= options.bars <= 32, f"--bars must be 1-32, got {options.bars}"),
        (1 <= options.primer_bars <= 16, f"--primer-bars must be 1-16, got {options.primer_bars}"),
    ]
    check_temperature(options.temperature)
    for ok, sentence in checks:
        if not ok:
            raise UserError(sentence)


def warm_up(answerer: Answerer, bpm: float) -> float:
    """Answer a short scale once (loads and warms everything); returns the seconds it took."""
    beat = 60.0 / bpm
    notes = [PlayedNote(60 + step, 80, i * beat, (i + 0.9) * beat) for i, step in enumerate((0, 2, 4, 5, 7, 5, 4, 2))]
    started = time.perf_counter()
    answerer(phrase_score(notes, 0.0, beat))
    return time.perf_counter() - started


def live_command(checkpoint: str, in_port: str | None = None, out_port: str | None = None, list_ports: bool = False,
                 config: LiveConfig | None = None, options: AnswerOptions | None = None,
                 say: Callable[[str], None] = print) -> None:
    """`tunesmith live`: list ports, or answer the player's phrases on the output port until Ctrl-C."""
    from tunesmith.live.ports import open_ports, port_lines

    if list_ports:
        for line in port_lines():
            say(line)
        return
    config, options = config or LiveConfig(), options or AnswerOptions()
    check_settings(config, options)
    port_lines()  # no MIDI system: one sentence before the model is loaded
    answerer = _answerer(checkpoint, options)
    expected = warm_up(answerer, config.bpm)
    inport, outport = open_ports(in_port, out_port)
    say(f"listening on {inport.name!r}, answering on {outport.name!r} after {config.wait_beats:g} beats of "
        f"silence ({options.bars} bars at {config.bpm:g} bpm or the MIDI clock); an answer takes "
        f"{expected * 1000:.0f} ms to compute; Ctrl-C stops")
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tunesmith-live") as executor, _stop_signals() as stop:
        session = LiveSession(answerer, inport, outport, config, executor=executor, expected_s=expected, say=say)
        try:
            session.run(stop=stop.is_set)
        finally:
            inport.close()
            outport.close()
    say(f"stopped after {len(session.answers)} answers; all notes off")


@contextlib.contextmanager
def _stop_signals():
    """SIGTERM ends the loop cleanly; Ctrl-C raises KeyboardInterrupt even where the shell started us with
    SIGINT ignored (a background job). Both end with all notes off (`LiveSession.run`)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _answerer(checkpoint: str, options: AnswerOptions) -> Answerer:
    import torch

    from tunesmith.models.checkpoint import load_model

    loaded = load_model(checkpoint)
    if loaded.model.cpu_threads:
        torch.set_num_threads(loaded.model.cpu_threads)
    return Answerer(loaded, options)
