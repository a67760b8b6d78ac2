"""Monophonic reductions shared by `grid` and `bars` (private): the skyline and the melody track.

Skyline: at every grid step, the highest pitch sounding (after roll semantics, `_grid` docstring),
or silence. `skyline` also tells which step each sounding top note started on, so a reduction can
tell a held note from a re-struck one.
"""

from __future__ import annotations

import numpy as np
from symusic import Score

from tunesmith.representations import _grid

REST = -1  # pitch value of a silent step

# Track-name keywords that mark a melody, best first; names with an excluded word are accompaniment.
MELODY_WORDS = ("melody", "vocal", "voca", "voice", "vox", "sing", "lead", "soprano", "solo", "flute")
NOT_MELODY_WORDS = ("back", "bg ", "bgv", "harmony", "choir", "pad", "bass", "drum")


def skyline(pitch: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Highest sounding pitch per step and the step its note began on.

    Inputs: roll-resolved notes (`_grid.resolve_overlaps`) in steps. Returns two int64 arrays of
    length `end.max()`: `top` (MIDI pitch, or REST) and `top_start` (start step of that note, or -1).
    """
    n_steps = int(end.max()) if len(end) else 0
    top = np.full(n_steps, REST, np.int64)
    top_start = np.full(n_steps, -1, np.int64)
    # Paint notes from low to high pitch so higher notes overwrite lower ones.
    order = np.argsort(pitch, kind="stable")
    pitch, start, end = pitch[order], start[order], end[order]
    lengths = end - start
    steps = np.repeat(start - np.r_[0, np.cumsum(lengths)[:-1]], lengths) + np.arange(lengths.sum())
    top[steps] = np.repeat(pitch, lengths)  # numpy assigns repeated indices in order: last (highest) wins
    top_start[steps] = np.repeat(start, lengths)
    return top, top_start


def steps_of_score(score: Score, steps_per_quarter: int, tracks: list[int] | None = None):
    """Roll-resolved (pitch, start, end) of the pitched notes of `score` (or of `tracks` only)."""
    table = _grid.step_table(score, steps_per_quarter, pitched_only=True)
    if tracks is not None:
        table = _grid.select(table, np.isin(table["track"], tracks))
    pitch, start, end, _ = _grid.resolve_overlaps(
        table["pitch"].astype(np.int64), table["start"], table["end"], np.zeros(len(table["pitch"]), np.int64)
    )
    return pitch, start, end


def melody_track(score: Score) -> int | None:
    """Index of the melody track of `score`, or None when it has no pitched notes.

    Rule: the first pitched track whose name holds the best-ranked word of `MELODY_WORDS` (and none
    of `NOT_MELODY_WORDS`), case-insensitive. Otherwise, among the pitched tracks with at least a
    quarter as many notes as the busiest one, the one with the highest mean pitch.
    """
    candidates = [(i, t) for i, t in enumerate(score.tracks) if not t.is_drum and len(t.notes) > 0]
    if not candidates:
        return None
    for word in MELODY_WORDS:
        for i, track in candidates:
            name = track.name.lower()
            if word in name and not any(bad in name for bad in NOT_MELODY_WORDS):
                return i
    busiest = max(len(t.notes) for _, t in candidates)
    busy = [(i, t) for i, t in candidates if 4 * len(t.notes) >= busiest]
    return max(busy, key=lambda it: (float(it[1].notes.numpy()["pitch"].mean()), -it[0]))[0]
