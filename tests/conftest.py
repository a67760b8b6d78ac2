"""Shared fixtures: paths to the real MIDI files copied into tests/fixtures (see their licence notes)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

# No per-example deadline anywhere: CI machines are shared and timing is not what these tests check.
settings.register_profile("tunesmith", deadline=None)
settings.load_profile("tunesmith")

FIXTURES = Path(__file__).parent / "fixtures"
REALMIDI = FIXTURES / "realmidi"
CORRUPT_MIDI = REALMIDI / "miditok_tests" / "MIDIs_corrupted" / "ValueError_Control168.mid"
BACH40 = FIXTURES / "bach40"
# lstm-bach's event tokenizer (REMI, 16th grid, no velocities or programs)
LSTM_BACH_EVENTS = {"steps_per_quarter": 4, "max_duration_quarters": 4, "velocities": 0, "use_programs": False}


def real_midi_files() -> list[Path]:
    """Every real-world MIDI fixture except the deliberately corrupt one, sorted."""
    files = [p for p in REALMIDI.rglob("*") if p.suffix.lower() in {".mid", ".midi"}]
    return sorted(p for p in files if p != CORRUPT_MIDI)


@pytest.fixture(scope="session")
def realmidi_dir() -> Path:
    return REALMIDI


@pytest.fixture(scope="session")
def jsb_tiny() -> Path:
    return FIXTURES / "jsb" / "jsb-tiny-quarter.json"


@pytest.fixture(scope="session")
def countdown_chorales():
    """(lstm-bach's event representation with 8 bar countdown tokens, the first 12 bach40 chorales encoded)."""
    from tunesmith.io.midi import read_midi
    from tunesmith.representations import get_representation

    rep = get_representation("events", **LSTM_BACH_EVENTS, countdown=8)
    return rep, [rep.encode(read_midi(path)) for path in sorted(BACH40.glob("*.mid"))[:12]]


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread, as training uses for small models (two threads wait on each other on a busy box)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
