"""MIDI ports through mido's python-rtmidi backend (ALSA / JACK on Linux, CoreMIDI, Windows MM).

Where no MIDI system answers (a container without ALSA sequencer, CI) every function here raises one
UserError sentence; the CLI turns it into exit code 2.
"""

from __future__ import annotations

import contextlib
import os

from tunesmith.core.errors import UserError

VIRTUAL_IN, VIRTUAL_OUT = "tunesmith in", "tunesmith out"
# Tried in order unless MIDO_BACKEND names one: the system's default API (ALSA on Linux, CoreMIDI,
# Windows MM), then JACK (a container without ALSA sequencer can run `jackd -d dummy`).
BACKENDS = ("mido.backends.rtmidi", "mido.backends.rtmidi/UNIX_JACK")


def backend():
    """The first mido backend that reaches a MIDI system (UserError naming why none does)."""
    try:
        import mido
    except ImportError as error:
        raise UserError(f"live MIDI needs mido and python-rtmidi (pip install 'tunesmith[live]'): {error}") from None
    names = [os.environ["MIDO_BACKEND"]] if os.environ.get("MIDO_BACKEND") else list(BACKENDS)
    reasons = []
    for name in names:
        try:
            midi = mido.Backend(name, load=True)
            with _quiet_stderr():  # ALSA's and JACK's C libraries print their own error lines on failure
                _probe(midi)
            return midi
        except ImportError as error:
            raise UserError(f"live MIDI needs python-rtmidi (pip install 'tunesmith[live]'): {error}") from None
        except Exception as error:  # noqa: BLE001 (rtmidi raises its own SystemError for a missing MIDI system)
            reasons.append(" ".join(str(error).split())[:120].rstrip(".") or error.__class__.__name__)
    raise UserError(f"no MIDI system is available on this machine ({'; '.join(reasons)})")


def _probe(midi) -> None:
    """Open and close a virtual port where the API has them (JACK without a server only fails here)."""
    midi.get_input_names()
    try:
        port = midi.open_input("tunesmith probe", virtual=True)
    except NotImplementedError:  # Windows MM: no virtual ports, listing worked
        return
    port.close()


def port_lines() -> list[str]:
    """The input and output ports, one per line, as `--in` / `--out` take them."""
    midi = backend()
    ins, outs = midi.get_input_names(), midi.get_output_names()
    return ([f"in:  {name}" for name in ins] or ["in:  (none)"]) + ([f"out: {name}" for name in outs] or
                                                                    ["out: (none)"])


def open_ports(in_name: str | None, out_name: str | None):
    """(input, output): the named ports, or new virtual ports 'tunesmith in' / 'tunesmith out' when a
    name is not given (a DAW or keyboard then connects to them)."""
    midi = backend()
    inport = _open(midi.open_input, midi.get_input_names(), in_name, VIRTUAL_IN, "--in")
    try:
        outport = _open(midi.open_output, midi.get_output_names(), out_name, VIRTUAL_OUT, "--out")
    except Exception:
        inport.close()
        raise
    return inport, outport


def _open(opener, names: list[str], wanted: str | None, virtual: str, flag: str):
    if wanted is None:
        try:
            return opener(virtual, virtual=True)
        except Exception as error:  # noqa: BLE001 (Windows MM has no virtual ports)
            raise UserError(f"cannot create the virtual port {virtual!r} ({error}); name a port with {flag}") from None
    match = [n for n in names if n == wanted] or [n for n in names if wanted in n]
    if not match:
        raise UserError(f"no MIDI port {wanted!r} for {flag}; available: {', '.join(names) or 'none'}")
    return opener(match[0])


@contextlib.contextmanager
def _quiet_stderr():
    """Send file descriptor 2 to /dev/null for the duration (C libraries write there directly)."""
    try:
        saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except OSError:
        yield
        return
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)
