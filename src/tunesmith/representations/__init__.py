"""Representations registered by name. See `base.py` for the contract and the round-trip law."""

from __future__ import annotations

from typing import Any

from tunesmith.core.errors import UserError
from tunesmith.representations.bars import BarsRepresentation
from tunesmith.representations.base import Representation
from tunesmith.representations.events import EventsRepresentation
from tunesmith.representations.grid import GridRepresentation
from tunesmith.representations.multitrack import MultitrackRepresentation
from tunesmith.representations.notes import NotesRepresentation
from tunesmith.representations.pianokeys import PianoKeysRepresentation
from tunesmith.representations.pianoroll import PianorollRepresentation

# name -> class; each module's docstring gives its array layout and what it keeps.
REPRESENTATIONS: dict[str, type[Representation]] = {
    "notes": NotesRepresentation,  # (n,) ids: note / chord names with durations, rests; fitted vocab
    "grid": GridRepresentation,  # (steps,) ids: pitch / hold / rest per 16th, skyline melody
    "events": EventsRepresentation,  # (n,) ids: miditok REMI or TSD, one stream with programs
    "pianoroll": PianorollRepresentation,  # (steps, 88, 2) bool: onset, sustain per piano key
    "bars": BarsRepresentation,  # (n_bars, 16, 128) uint8 one-hot melody; chords(score): (n_bars, 13)
    "multitrack": MultitrackRepresentation,  # (5, steps, 128) uint8 velocities of the LPD-5 groups
    "pianokeys": PianoKeysRepresentation,  # (channels, 88, frames) float32 key-band energies of audio
}


def get_representation(name: str, **config: Any) -> Representation:
    """A representation by registered name, its config fields overridden by keyword."""
    if name not in REPRESENTATIONS:
        raise UserError(f"unknown representation {name!r}; known: {', '.join(sorted(REPRESENTATIONS))}")
    cls = REPRESENTATIONS[name]
    try:
        config_obj = cls.Config(**config)
    except TypeError as error:  # an unknown config key
        raise UserError(f"bad config for representation {name!r}: {error}") from None
    return cls(config_obj)


def representation_from_dict(data: dict[str, Any]) -> Representation:
    """Inverse of `Representation.to_dict()` (used by checkpoints)."""
    rep = get_representation(data["name"], **data.get("config", {}))
    rep.load_state(data.get("state", {}))
    return rep
