"""MIDI ports through mido's python-rtmidi backend (ALSA / JACK on Linux, CoreMIDI, Windows MM).

Where no MIDI system answers (a container without ALSA sequencer, CI) every function here raises one
UserError sentence; the CLI turns it into exit code 2.
"""

from __future__ import annotations

import contextlib
import os

from tunesmith.core.errors import UserError

VIRTUAL_IN, VIRTUAL_OUT = "tunesmith in", "tunesmith out"
BACKEND = "mido.backends.rtmidi"


def backend():
    """mido's rtmidi backend, checked to reach a MIDI system (UserError otherwise)."""
    try:
        import mido

        midi = mido.Backend(BACKEND, load=True)
        with _quiet_stderr():  # ALSA's C library prints its own error lines on failure
            midi.get_input_names()
    except ImportError as error:
        raise UserError(f"live MIDI needs mido and python-rtmidi (pip install 'tunesmith[live]'): {error}") from None
    except Exception as error:  # noqa: BLE001 (rtmidi raises its own SystemError for a missing MIDI system)
        reason = " ".join(str(error).split())[:160] or error.__class__.__name__
        raise UserError(f"no MIDI system is available on this machine ({reason})") from None
    return midi


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
    match = [n for n in names if n == wanted] or [n for n in names if n.startswith(wanted)]
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
