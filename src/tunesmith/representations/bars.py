"""`bars`: MidiNet bars, one 4/4 bar = 16 steps x 128 pitches of a monophonic melody, plus chords.

Array (`encode`): shape (n_bars, steps_per_bar, 128), dtype uint8, one-hot: row [b, t] has a 1 at
the pitch sounding at step t of bar b, or is all zero for a rest. Steps are 1/4 of a quarter by
default (16 per bar); bars start at tick 0. `n_bars` covers the melody up to its last note.

Chords (`chords(score)`): shape (n_bars, 13), float32: one-hot root pitch class (0 = C .. 11 = B)
in [:12], and [12] = 1 for a minor chord, 0 for major; a bar with no accompaniment is all zero.
`chord_vector("Am")` / `chord_vectors("C G Am F")` build the same vectors from chord names.

What is kept (see `canonical`):
- the melody track, chosen by name (melody, vocal, voice, lead, soprano...) else the busy pitched
  track with the highest mean pitch (`_melody.melody_track`);
- its skyline (highest sounding pitch per step, after quantization and roll semantics);
- one pitch or rest per step and no onsets: consecutive steps of one pitch are one note (a re-struck
  note joins the previous one, as MidiNet's one-hot steps cannot tell them apart); velocity 80.
Meter: MidiNet used 4/4 only. A score with any other time signature raises `SkipFile` (default
`other_meters="skip"`), or with `other_meters="ignore"` is cut every 16 steps regardless.
Decoding takes, per step, the argmax over the 128 values (lowest pitch on ties), or a rest when
the row's maximum is 0, so a model's scores or probabilities decode directly.

Chord estimation (`chords`): the accompaniment is every pitched track except the melody (or the
melody itself when it is the only one). Each bar's pitch-class histogram (quantized steps sounding,
all octaves) is matched against the 24 major and minor triads; the triad covering the most
sounding steps wins, ties to major, then to the lower root.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from symusic import Score

from tunesmith.core.constants import N_PITCHES, PITCH_NAMES
from tunesmith.core.errors import SkipFile, UserError
from tunesmith.representations import _grid, _melody
from tunesmith.representations.base import Representation

CHORD_DIM = 13  # 12 root pitch classes + minor flag
_LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_ACCIDENTALS = {"": 0, "#": 1, "♯": 1, "b": -1, "♭": -1}
# Chord-name suffixes, read after the root: triads and common extensions reduced to major / minor.
_MAJOR = {"", "maj", "M", "major", "7", "maj7", "M7", "6", "9", "add9", "maj9", "sus2", "sus4", "sus", "aug",
          "+"}
_MINOR = {"m", "min", "minor", "-", "m7", "min7", "-7", "m6", "m9", "madd9", "dim", "o", "m7b5", "dim7"}
_NO_CHORD = {"N", "NC", "N.C.", "X"}
_CHORD_RE = re.compile(r"^([A-Ga-g])([#b♯♭]?)([^/]*)(/.*)?$")


def chord_vector(name: str) -> np.ndarray:
    """13-d float32 vector of a chord name: 'C', 'F#m', 'Bb7', 'Ebmaj7', 'C/E', or 'N' (no chord: zeros).

    Qualities reduce to major or minor (sus, aug and dominant 7ths count as major; dim as minor);
    a slash bass is ignored. Anything else is a `UserError`.
    """
    text = name.strip()
    vector = np.zeros(CHORD_DIM, np.float32)
    if text.upper() in _NO_CHORD:
        return vector
    match = _CHORD_RE.match(text)
    if not match or match.group(3) not in _MAJOR | _MINOR:
        raise UserError(f"cannot read chord name {name!r}; use names like C, Am, F#m, Bb7 or N")
    root = (_LETTERS[match.group(1).upper()] + _ACCIDENTALS[match.group(2)]) % 12
    vector[root] = 1.0
    vector[12] = float(match.group(3) in _MINOR)
    return vector


def chord_vectors(text: str) -> np.ndarray:
    """Chord names separated by spaces, commas or bars ("C G Am F") -> (n, 13) float32."""
    names = [n for n in re.split(r"[\s,|]+", text) if n]
    if not names:
        raise UserError("no chord names given; write them like \"C G Am F\"")
    return np.stack([chord_vector(n) for n in names])


def chord_name(vector: np.ndarray) -> str:
    """Inverse of `chord_vector` on its outputs: 'C', 'F#m', or 'N' for an all-zero vector."""
    v = np.asarray(vector, dtype=np.float32).reshape(-1)
    if v.shape != (CHORD_DIM,):
        raise UserError(f"a chord vector has {CHORD_DIM} values, got {v.shape[0]}")
    if not v[:12].any():
        return "N"
    return PITCH_NAMES[int(np.argmax(v[:12]))] + ("m" if v[12] >= 0.5 else "")


def _triad_templates() -> np.ndarray:
    """(24, 12) int64: rows 0..11 major triads on C..B, rows 12..23 minor triads."""
    templates = np.zeros((24, 12), np.int64)
    for root in range(12):
        templates[root, [root, (root + 4) % 12, (root + 7) % 12]] = 1
        templates[12 + root, [root, (root + 3) % 12, (root + 7) % 12]] = 1
    return templates


TRIADS = _triad_templates()


@dataclass(frozen=True)
class BarsConfig:
    """steps_per_bar: steps in one 4/4 bar (16 = 16th notes); other_meters: "skip" or "ignore"."""

    steps_per_bar: int = 16
    other_meters: str = "skip"

    def __post_init__(self) -> None:
        _grid.check_positive("steps_per_bar", self.steps_per_bar)
        if self.steps_per_bar % 4:
            raise UserError(f"steps_per_bar must be a multiple of 4 (a 4/4 bar), not {self.steps_per_bar}")
        if self.other_meters not in ("skip", "ignore"):
            raise UserError(f"other_meters must be 'skip' or 'ignore', not {self.other_meters!r}")


class BarsRepresentation(Representation):
    """MidiNet melody bars and chord vectors; see the module docstring."""

    name = "bars"
    Config = BarsConfig

    @property
    def steps_per_quarter(self) -> int:
        return self.config.steps_per_bar // 4

    @property
    def tpq(self) -> int:
        """Ticks per quarter of decoded and canonical scores."""
        return _grid.output_tpq(self.steps_per_quarter)

    def _check_meter(self, score: Score) -> None:
        if self.config.other_meters == "ignore":
            return
        for ts in score.time_signatures:
            if (ts.numerator, ts.denominator) != (4, 4):
                meter = f"{ts.numerator}/{ts.denominator}"
                raise SkipFile(f"time signature {meter} at tick {ts.time}: bars are 4/4")

    def melody_steps(self, score: Score) -> np.ndarray:
        """Pitch per step of the melody's skyline (-1 = rest), int64, from tick 0 to its last note."""
        self._check_meter(score)
        track = _melody.melody_track(score)
        if track is None:
            return np.zeros(0, np.int64)
        top, _ = _melody.skyline(*_melody.steps_of_score(score, self.steps_per_quarter, [track]))
        return top

    def encode(self, score: Score) -> np.ndarray:
        """Score -> (n_bars, steps_per_bar, 128) uint8 one-hot melody."""
        top = self.melody_steps(score)
        n_bars = -(-len(top) // self.config.steps_per_bar)
        flat = np.zeros((n_bars * self.config.steps_per_bar, N_PITCHES), np.uint8)
        sounding = np.flatnonzero(top != _melody.REST)
        flat[sounding, top[sounding]] = 1
        return flat.reshape(n_bars, self.config.steps_per_bar, N_PITCHES)

    def decode(self, array: np.ndarray) -> Score:
        """(n_bars, steps_per_bar, 128) one-hot or scores -> one melody track at `self.tpq`."""
        bars = np.asarray(array)
        if bars.ndim != 3 or bars.shape[1:] != (self.config.steps_per_bar, N_PITCHES):
            raise UserError(
                f"bars must have shape (n_bars, {self.config.steps_per_bar}, {N_PITCHES}), got {bars.shape}"
            )
        flat = bars.reshape(-1, N_PITCHES)
        top = np.where(flat.max(axis=1, initial=0) > 0, np.argmax(flat, axis=1), _melody.REST)
        return self._score(top.astype(np.int64))

    def canonical(self, score: Score) -> Score:
        """The melody track's skyline, quantized, one pitch per step, repeated pitches joined."""
        return self._score(self.melody_steps(score))

    def _score(self, top: np.ndarray) -> Score:
        """One track from per-step pitches: each run of one pitch is a note."""
        prev = np.r_[_melody.REST, top[:-1]]
        sounding = top != _melody.REST
        _, start, end = _grid.runs((sounding & (top != prev))[:, None], sounding[:, None])
        ticks = self.tpq // self.steps_per_quarter
        track = _grid.make_step_track(top[start], start, end, _grid.DEFAULT_VELOCITY, ticks, name="melody")
        return _grid.score_with_tracks([track], self.tpq)

    def chords(self, score: Score) -> np.ndarray:
        """(n_bars, 13) float32 chord vector per bar of `encode(score)` (module docstring)."""
        n_bars = len(self.encode(score))
        melody = _melody.melody_track(score)
        if n_bars == 0 or melody is None:
            return np.zeros((n_bars, CHORD_DIM), np.float32)
        others = [i for i, t in enumerate(score.tracks) if not t.is_drum and i != melody and len(t.notes)]
        table = _grid.step_table(score, self.steps_per_quarter, pitched_only=True)
        table = _grid.select(table, np.isin(table["track"], others or [melody]))
        return _estimate_chords(table, n_bars, self.config.steps_per_bar)


def _estimate_chords(table: dict[str, np.ndarray], n_bars: int, steps_per_bar: int) -> np.ndarray:
    """Template-matched chord vectors (n_bars, 13) from a step table of the accompaniment."""
    n_steps = n_bars * steps_per_bar
    start = np.minimum(table["start"], n_steps)
    lengths = np.minimum(table["end"], n_steps) - start
    steps = np.repeat(start - np.r_[0, np.cumsum(lengths)[:-1]], lengths) + np.arange(lengths.sum())
    pcs = np.repeat(table["pitch"].astype(np.int64) % 12, lengths)
    bar = steps // steps_per_bar
    histogram = np.bincount(bar * 12 + pcs, minlength=n_bars * 12).reshape(n_bars, 12)
    scores = histogram @ TRIADS.T  # (n_bars, 24) sounding steps covered by each triad
    best = np.argmax(scores, axis=1)  # first maximum: majors before minors, lower roots first
    out = np.zeros((n_bars, CHORD_DIM), np.float32)
    has_chord = histogram.sum(axis=1) > 0
    rows = np.flatnonzero(has_chord)
    out[rows, best[rows] % 12] = 1.0
    out[rows, 12] = (best[rows] >= 12).astype(np.float32)
    return out
