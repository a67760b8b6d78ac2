"""How a piece ends: does it close on the tonic, and is the close held? (issue 11, item 2: form)

Tonal music ends with a cadence: the last sonority is the tonic chord, with the tonic in the bass, held
for at least a beat. A piece cut off at an arbitrary bar line, or stopped by a random draw of an end
token, usually fails these tests. For one piece (pitched notes only, drums ignored):

- the key is estimated from the whole piece (Krumhansl-Kessler, `data.augment.estimate_key`);
- the *final sonority* is every note sounding at the last onset (its own notes and notes held into it);
- `tonic_bass`: its lowest pitch is the tonic (for a melody: its last note is the tonic);
- `tonic_chord`: its pitch classes hold the tonic and lie within the tonic triad (major or minor third,
  so a Picardy third counts), and it is a chord: at least 3 notes, or as many as the piece ever sounds
  at once when that is fewer (a melody's last note may be one note); a four-voice piece that ends on a
  lone tonic, or on a bare octave, has not closed on a chord;
- `held`: it lasts at least one beat (a quarter note) from the last onset.

`ending_rates` gives the fraction of a set's pieces passing each test, and `cadence` (all three).

What the tests cannot know: a chorale in a mode, or one whose key the profile misreads (a minor piece read
as its relative major, so its Picardy close looks like a chord on the sixth degree), fails although Bach
closed it as he meant to: of the 40 held-out chorales of lstm-bach's split 0.72 pass, and all 11 that fail
end on a held major triad the profile does not call the tonic (a mode's final, a Phrygian half close, or a
misread key). That is the ceiling a model is compared with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from symusic import Score

from tunesmith.core.score import note_table
from tunesmith.data.augment import estimate_key

TESTS = ("tonic_bass", "tonic_chord", "held", "cadence")
FULL_CHORD = 3  # notes a final sonority needs to be a chord (fewer when the piece never sounds so many)


@dataclass(frozen=True)
class Ending:
    """The three tests of one piece's ending (see the module docstring)."""

    tonic_bass: bool
    tonic_chord: bool
    held: bool

    @property
    def cadence(self) -> bool:
        return self.tonic_bass and self.tonic_chord and self.held


def ending_of(score: Score) -> Ending | None:
    """The ending of `score`, or None when it has no pitched notes."""
    key = estimate_key(score)
    table = note_table(score)
    pitched = ~table["is_drum"]
    if key is None or not pitched.any():
        return None
    start, pitch = table["start"][pitched], table["pitch"][pitched]
    end = start + table["duration"][pitched]
    last_onset = start.max()
    sounding = (start <= last_onset) & (end > last_onset)
    chord = pitch[sounding]
    tonic = key[0]
    classes = {int(p) % 12 for p in chord}
    triad = {tonic, (tonic + 3) % 12, (tonic + 4) % 12, (tonic + 7) % 12}
    full = len(chord) >= min(FULL_CHORD, most_sounding(start, end))
    held = int(end[sounding].max() - last_onset) >= score.ticks_per_quarter
    return Ending(int(chord.min()) % 12 == tonic, full and tonic in classes and classes <= triad, held)


def most_sounding(start: np.ndarray, end: np.ndarray) -> int:
    """The most notes sounding at once, notes [start, end) in ticks (n,) each (a note ending where
    another starts does not overlap it)."""
    times = np.concatenate([start, end])
    change = np.concatenate([np.ones(len(start), int), -np.ones(len(end), int)])
    order = np.lexsort((change, times))  # at equal times, ends (-1) before starts (+1)
    return int(np.cumsum(change[order]).max(initial=0))


def ending_rates(scores: Sequence[Score]) -> dict[str, float]:
    """Fraction of the pieces (with pitched notes) passing each test of `TESTS`; NaN for an empty set."""
    endings = [e for e in (ending_of(s) for s in scores) if e is not None]
    if not endings:
        return {name: float("nan") for name in TESTS}
    return {name: float(np.mean([getattr(e, name) for e in endings])) for name in TESTS}
