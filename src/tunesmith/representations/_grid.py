"""Step-grid helpers shared by the representations (private to this package).

A *step table* is a note table (see `core.score`) whose times are in grid steps instead of ticks:
`pitch` (int16, MIDI), `start` and `end` (int64 steps, end exclusive, end >= start + 1), `velocity`
(int16), `track` (int32), `program` (int16), `is_drum` (bool), all 1-D arrays of one length.
Quantization rounds each start and end to the nearest step (half to even, as `core.score.quantize`)
and keeps at least one step of duration.

Roll semantics (`resolve_overlaps`): on a grid, one pitch can only be in one note at a time. Notes
of one pitch that start on the same step become one note (the longest; the loudest velocity); a
note is cut where the next note of the same pitch starts; the last note of an overlapping cluster
lasts to the end of the cluster. This is exactly what an (onset, sustain) roll can hold.
"""

from __future__ import annotations

import math

import numpy as np
from symusic import Note, Score, Track

from tunesmith.core.constants import DEFAULT_TPQ
from tunesmith.core.errors import SkipFile, UserError
from tunesmith.core.score import grid_steps, new_score, note_table

# Beyond this many steps a score is refused rather than turned into a huge array (1M 16th steps
# at 120 qpm is about 35 hours: no real piece is that long; ingest guards catch such files earlier).
MAX_STEPS = 1_000_000
DEFAULT_VELOCITY = 80  # velocity of decoded notes when a representation does not keep velocities
SPECIALS = ("<pad>", "<bos>", "<eos>")  # ids 0, 1, 2 of every tunesmith-built vocabulary

TABLE_FIELDS = ("pitch", "start", "end", "velocity", "track", "program", "is_drum")


def output_tpq(steps_per_quarter: int) -> int:
    """Ticks per quarter of decoded scores: 480, or a multiple of it that the grid divides."""
    return DEFAULT_TPQ if DEFAULT_TPQ % steps_per_quarter == 0 else math.lcm(DEFAULT_TPQ, steps_per_quarter)


def check_positive(name: str, value: int) -> None:
    """UserError unless `value` is a positive int (config validation)."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise UserError(f"{name} must be a positive whole number, not {value!r}")


def step_table(score: Score, steps_per_quarter: int, *, pitched_only: bool = False) -> dict[str, np.ndarray]:
    """Every note of `score` as a step table, sorted by (start, pitch); drums dropped if `pitched_only`.

    Notes with a negative start tick are dropped (they cannot be placed on a grid from 0).
    Raises `SkipFile` when the score would span more than `MAX_STEPS` steps.
    """
    table = note_table(score)
    keep = table["start"] >= 0
    if pitched_only:
        keep &= ~table["is_drum"]
    table = {k: v[keep] for k, v in table.items()}
    start, end = grid_steps(table["start"], table["duration"], score.ticks_per_quarter, steps_per_quarter)
    if len(end) and int(end.max()) > MAX_STEPS:
        raise SkipFile(f"score spans {int(end.max())} grid steps, more than the limit of {MAX_STEPS}")
    out = {k: table[k] for k in ("pitch", "velocity", "track", "program", "is_drum")}
    out["start"], out["end"] = start, end
    return out


def select(table: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    """The rows of a step table where `mask` is true."""
    return {k: v[mask] for k, v in table.items()}


def resolve_overlaps(
    pitch: np.ndarray, start: np.ndarray, end: np.ndarray, velocity: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Apply roll semantics (module docstring) to notes of one instrument; arrays in steps.

    Returns (pitch, start, end, velocity), sorted by (pitch, start), with no two notes of one pitch
    overlapping.
    """
    if len(pitch) == 0:
        return pitch, start, end, velocity
    order = np.lexsort((-end, start, pitch))
    p, s, e, v = (np.asarray(a)[order] for a in (pitch, start, end, velocity))
    # Running max of `end` within each pitch: a pitch offset makes one cumulative max reset per pitch.
    offset = p.astype(np.int64) << 40
    run_max = np.maximum.accumulate(offset + e) - offset
    first_of_pitch = np.r_[True, p[1:] != p[:-1]]
    prev_max = np.r_[0, run_max[:-1]]
    new_cluster = first_of_pitch | (s > prev_max)
    cluster = np.cumsum(new_cluster) - 1
    cluster_end = np.maximum.reduceat(e, np.flatnonzero(new_cluster))[cluster]
    # One note per (pitch, start): the first row of each group (the longest), loudest velocity.
    first = np.r_[True, (p[1:] != p[:-1]) | (s[1:] != s[:-1])]
    index = np.flatnonzero(first)
    vel = np.maximum.reduceat(v, index)
    p, s, cend = p[index], s[index], cluster_end[index]
    next_start = np.r_[s[1:], np.iinfo(np.int64).max]
    next_start[np.r_[p[1:] != p[:-1], True]] = np.iinfo(np.int64).max
    return p, s, np.minimum(cend, next_start), vel


def merge_touching(
    pitch: np.ndarray, start: np.ndarray, end: np.ndarray, velocity: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Join notes of one pitch and velocity where one ends on the step the next starts.

    Input sorted by (pitch, start) without overlaps (`resolve_overlaps` output); output likewise.
    """
    if len(pitch) == 0:
        return pitch, start, end, velocity
    joins = (pitch[1:] == pitch[:-1]) & (start[1:] == end[:-1]) & (velocity[1:] == velocity[:-1])
    head = np.flatnonzero(np.r_[True, ~joins])
    tail = np.r_[head[1:] - 1, len(pitch) - 1]
    return pitch[head], start[head], end[tail], velocity[head]


def fill_roll(
    rows: np.ndarray, start: np.ndarray, end: np.ndarray, values: np.ndarray, roll: np.ndarray
) -> None:
    """Write `values[i]` into `roll[start[i]:end[i], rows[i]]` for every note, in place.

    `roll` is (steps, n_rows); notes must not overlap on one row (later notes win otherwise).
    """
    lengths = (end - start).astype(np.int64)
    if lengths.sum() == 0:
        return
    steps = np.repeat(start - np.r_[0, np.cumsum(lengths)[:-1]], lengths) + np.arange(lengths.sum())
    roll[steps, np.repeat(rows, lengths)] = np.repeat(values, lengths)


def runs(begin: np.ndarray, inside: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Notes of a (steps, n_rows) roll given where notes begin and where they continue.

    A note begins at every true `begin[t, k]` and lasts while `inside[t + 1, k]`, ... are true
    (`inside` is ignored where `begin` is true). Returns (row, start, end) int64 arrays, steps,
    sorted by (row, start).
    """
    n_steps, n_rows = begin.shape
    # Row-major over (row, step) with one padding step per row, so no run crosses into the next row.
    b = np.zeros((n_rows, n_steps + 1), bool)
    c = np.zeros((n_rows, n_steps + 1), bool)
    b[:, :n_steps] = begin.T
    c[:, :n_steps] = inside.T & ~begin.T
    flat_b, flat_c = b.ravel(), c.ravel()
    starts = np.flatnonzero(flat_b)
    stops = np.flatnonzero(~flat_c)
    ends = stops[np.searchsorted(stops, starts, side="right")]
    row, start = np.divmod(starts, n_steps + 1)
    return row, start, ends - row * (n_steps + 1)


def make_step_track(
    pitch: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    velocity: np.ndarray | int,
    ticks_per_step: int,
    *,
    program: int = 0,
    is_drum: bool = False,
    name: str = "",
) -> Track:
    """A track from notes in steps, sorted by (start, pitch, end, velocity) so output is deterministic."""
    pitch = np.asarray(pitch, dtype=np.int64)
    vel = np.broadcast_to(np.asarray(velocity, dtype=np.int64), pitch.shape)
    start, end = np.asarray(start, dtype=np.int64), np.asarray(end, dtype=np.int64)
    order = np.lexsort((vel, end, pitch, start))
    track = Track(name, int(program), bool(is_drum))
    track.notes = Note.from_numpy(
        (start[order] * ticks_per_step).astype(np.int32),
        ((end - start)[order] * ticks_per_step).astype(np.int32),
        pitch[order].astype(np.int8),
        np.clip(vel[order], 1, 127).astype(np.int8),
    )
    return track


def score_with_tracks(tracks: list[Track], tpq: int) -> Score:
    """A fresh score (120 qpm, 4/4, `tpq` ticks per quarter) holding `tracks`."""
    score = new_score(tpq=tpq)
    for track in tracks:
        score.tracks.append(track)
    return score


def as_int_array(array: np.ndarray, what: str, ndim: int) -> np.ndarray:
    """`array` as int64 after checking its rank; UserError for anything that is not whole numbers."""
    arr = np.asarray(array)
    if arr.ndim != ndim:
        raise UserError(f"{what} must be a {ndim}-D array, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise UserError(f"{what} must hold numbers, got dtype {arr.dtype}")
    whole = np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool
    if arr.size and not whole and not (np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
        raise UserError(f"{what} must hold whole numbers, got dtype {arr.dtype}")
    return arr.astype(np.int64)
