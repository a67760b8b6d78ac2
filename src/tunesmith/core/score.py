"""Pure helpers over symusic's `Score` in ticks. None of them mutates its argument.

A *note table* is the struct-of-arrays view of every note of a score, all tracks together:
`pitch` (MIDI 0-127), `start` and `duration` (ticks), `velocity` (1-127), `track` (index into
`score.tracks`), `program` (GM 0-127) and `is_drum` (bool), all 1-D arrays of one length.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from symusic import Note, Score, Tempo, TextMeta, TimeSignature, Track

from tunesmith.core.constants import DEFAULT_QPM, DEFAULT_TPQ

NOTE_FIELDS = ("pitch", "start", "duration", "velocity", "track", "program", "is_drum")


def new_score(
    tpq: int = DEFAULT_TPQ, qpm: float = DEFAULT_QPM, time_signature: tuple[int, int] = (4, 4)
) -> Score:
    """An empty score with one tempo (quarters per minute) and one time signature at tick 0."""
    score = Score(tpq)
    score.tempos.append(Tempo(0, qpm=float(qpm)))
    score.time_signatures.append(TimeSignature(0, *time_signature))
    return score


def make_track(
    pitch: Iterable[int],
    start: Iterable[int],
    duration: Iterable[int],
    velocity: Iterable[int] | int = 80,
    *,
    program: int = 0,
    is_drum: bool = False,
    name: str = "",
) -> Track:
    """A track from parallel note arrays (ticks); `velocity` may be one number for every note."""
    pitch = np.asarray(list(pitch) if not isinstance(pitch, np.ndarray) else pitch, dtype=np.int8)
    start = np.asarray(start, dtype=np.int32)
    duration = np.asarray(duration, dtype=np.int32)
    vel = np.broadcast_to(np.asarray(velocity, dtype=np.int8), pitch.shape).copy()
    track = Track(name, int(program), bool(is_drum))
    order = np.lexsort((pitch, start))
    track.notes = Note.from_numpy(start[order], duration[order], pitch[order], vel[order])
    return track


def note_table(score: Score) -> dict[str, np.ndarray]:
    """Every note of every track as a note table (see module docstring), sorted by (start, pitch)."""
    parts = {field: [] for field in NOTE_FIELDS}
    for index, track in enumerate(score.tracks):
        arrays = track.notes.numpy()
        n = len(arrays["time"])
        parts["pitch"].append(arrays["pitch"].astype(np.int16))
        parts["start"].append(arrays["time"].astype(np.int64))
        parts["duration"].append(arrays["duration"].astype(np.int64))
        parts["velocity"].append(arrays["velocity"].astype(np.int16))
        parts["track"].append(np.full(n, index, np.int32))
        parts["program"].append(np.full(n, track.program, np.int16))
        parts["is_drum"].append(np.full(n, track.is_drum, bool))
    table = {k: (np.concatenate(v) if v else np.zeros(0, _dtype(k))) for k, v in parts.items()}
    order = np.lexsort((table["pitch"], table["start"]))
    return {k: v[order] for k, v in table.items()}


def _dtype(field: str) -> type:
    return {"is_drum": bool, "start": np.int64, "duration": np.int64, "track": np.int32}.get(field, np.int16)


def copy_meta(score: Score, tpq: int | None = None) -> Score:
    """An empty score with the tempos and time signatures of `score` (rescaled when `tpq` differs)."""
    out = Score(score.ticks_per_quarter)
    for tempo in score.tempos:
        out.tempos.append(tempo.copy())
    for ts in score.time_signatures:
        out.time_signatures.append(ts.copy())
    if tpq is not None and tpq != score.ticks_per_quarter:
        out = out.resample(tpq, min_dur=1)
    return out


def grid_steps(start: np.ndarray, duration: np.ndarray, tpq: int,
               steps_per_quarter: int) -> tuple[np.ndarray, np.ndarray]:
    """The quantisation rule, used everywhere: note starts and ends (ticks at `tpq`) rounded to the
    nearest of `steps_per_quarter` steps per quarter, every note at least one step long ->
    (start step, end step) int64."""
    start_step = np.round(np.asarray(start) * steps_per_quarter / tpq).astype(np.int64)
    end_step = np.round((np.asarray(start) + np.asarray(duration)) * steps_per_quarter / tpq).astype(np.int64)
    return start_step, np.maximum(end_step, start_step + 1)


def quantize(score: Score, steps_per_quarter: int, tpq: int | None = None) -> Score:
    """Snap every note start and end to a grid of `steps_per_quarter` steps per quarter note.

    Notes keep at least one step of duration. The result has `tpq` ticks per quarter (default: the
    input's); a grid that does not divide the tpq is still exact, since positions are rounded in steps.
    """
    tpq = tpq or score.ticks_per_quarter
    src = score.ticks_per_quarter
    out = copy_meta(score, tpq)
    for track in score.tracks:
        arrays = track.notes.numpy()
        start_step, end_step = grid_steps(arrays["time"], arrays["duration"], src, steps_per_quarter)
        ticks = lambda steps: (steps * tpq) // steps_per_quarter  # noqa: E731
        out.tracks.append(
            make_track(
                arrays["pitch"], ticks(start_step), ticks(end_step) - ticks(start_step), arrays["velocity"],
                program=track.program, is_drum=track.is_drum, name=track.name,
            )
        )
    return out


def transpose(score: Score, semitones: int) -> Score:
    """Shift every pitched (non-drum) note by `semitones`; drums are left as they are."""
    out = score.copy()
    for track in out.tracks:
        if not track.is_drum:
            track.shift_pitch(int(semitones), inplace=True)
    return out


def pitch_range(score: Score, include_drums: bool = False) -> tuple[int, int] | None:
    """(lowest, highest) MIDI pitch of the score's notes, or None when it has none."""
    table = note_table(score)
    pitches = table["pitch"] if include_drums else table["pitch"][~table["is_drum"]]
    return (int(pitches.min()), int(pitches.max())) if len(pitches) else None


def trim(score: Score, start_tick: int, end_tick: int) -> Score:
    """Notes starting in [start_tick, end_tick), shifted to begin at 0 and cut at `end_tick`."""
    out = copy_meta(score)
    for track in score.tracks:
        a = track.notes.numpy()
        keep = (a["time"] >= start_tick) & (a["time"] < end_tick)
        start = a["time"][keep] - start_tick
        end = np.minimum(a["time"][keep] + a["duration"][keep], end_tick) - start_tick
        out.tracks.append(
            make_track(a["pitch"][keep], start, end - start, a["velocity"][keep],
                       program=track.program, is_drum=track.is_drum, name=track.name)
        )
    return out


def bar_starts(score: Score, end_tick: int | None = None) -> np.ndarray:
    """Tick of every bar line from 0 to the score's end (or `end_tick`), following time signatures.

    A bar lasts numerator x (4 / denominator) quarters; without a time signature 4/4 is assumed.
    """
    tpq = score.ticks_per_quarter
    end = score.end() if end_tick is None else end_tick
    sigs = sorted((ts.time, ts.numerator, ts.denominator) for ts in score.time_signatures)
    if not sigs or sigs[0][0] > 0:
        sigs.insert(0, (0, 4, 4))
    segments = []
    for i, (time, num, den) in enumerate(sigs):
        seg_end = sigs[i + 1][0] if i + 1 < len(sigs) else max(end, time + 1)
        segments.append(np.arange(time, seg_end, max(1, num * tpq * 4 // den), dtype=np.int64))
    return np.concatenate(segments)


def first_tempo_qpm(score: Score) -> float:
    """Tempo in quarters per minute at tick 0 (120 when the score has none)."""
    tempos = sorted(score.tempos, key=lambda t: t.time)
    return float(tempos[0].qpm) if tempos else DEFAULT_QPM


def scores_have_same_notes(a: Score, b: Score, fields: tuple[str, ...] = ("pitch", "start", "duration")) -> bool:
    """True when both scores hold the same multiset of notes (compared on `fields`), in ticks of `a`.

    `b` is resampled to `a`'s ticks per quarter first, so scores written at different resolutions compare.
    """
    if b.ticks_per_quarter != a.ticks_per_quarter:
        b = b.resample(a.ticks_per_quarter, min_dur=1)
    ta, tb = note_table(a), note_table(b)
    if len(ta["pitch"]) != len(tb["pitch"]):
        return False
    rows_a = sorted(zip(*(ta[f].tolist() for f in fields), strict=True))
    rows_b = sorted(zip(*(tb[f].tolist() for f in fields), strict=True))
    return rows_a == rows_b


def bar_line_after(score: Score, bars: int, after_tick: int = 0) -> int:
    """Tick of the bar line `bars` bars after the bar in which `after_tick` falls (a primer's end: the
    bar it ends in belongs to it), following the score's time signatures (4/4 without one)."""
    horizon = after_tick + (bars + 2) * 16 * score.ticks_per_quarter  # room for bars of up to 16 quarters
    starts = bar_starts(score, end_tick=horizon)
    first = int(np.searchsorted(starts, after_tick, side="left"))
    return int(starts[first + bars])


def bars_after(score: Score, bars: int, after_tick: int = 0) -> Score:
    """The score cut `bars` bars after the bar in which `after_tick` falls; the whole score when shorter."""
    end = bar_line_after(score, bars, after_tick)
    return trim(score, 0, end) if score.end() > end else score


def cut_at(score: Score, end_tick: int) -> Score:
    """The notes starting before `end_tick`, cut there; the score lasts exactly `end_tick` ticks (a
    marker at `end_tick` keeps the length when the piece ends in silence)."""
    out = trim(score, 0, end_tick)
    for events in (out.tempos, out.time_signatures):
        kept = [e for e in events if e.time < end_tick]
        events.clear()
        for event in kept:
            events.append(event)
    if out.end() < end_tick:
        out.markers.append(TextMeta(end_tick, "end"))
    return out


def last_bars(score: Score, bars: int) -> Score:
    """The last `bars` bars of `score` (notes starting in them), moved to start at tick 0, with the
    tempo and time signature in force there; the whole score when it has no more bars than that."""
    starts = bar_starts(score)
    if len(starts) <= bars:
        return score
    begin = int(starts[-bars])
    out = trim(score, begin, score.end() + 1)
    out.tempos.clear()
    out.time_signatures.clear()
    for source, target in ((score.tempos, out.tempos), (score.time_signatures, out.time_signatures)):
        events = sorted(source, key=lambda e: e.time)
        before = [e for e in events if e.time <= begin][-1:]
        for event in before + [e for e in events if e.time > begin]:
            moved = event.copy()
            moved.time = max(0, event.time - begin)
            target.append(moved)
    return out


def with_meter(score: Score, source: Score) -> Score:
    """`score` with the tempos and time signatures of `source` (same ticks per quarter assumed; they
    are rescaled when `source` has another resolution)."""
    meta = copy_meta(source, score.ticks_per_quarter)
    out = score.copy()
    out.tempos.clear()
    out.time_signatures.clear()
    for event in meta.tempos:
        out.tempos.append(event)
    for event in meta.time_signatures:
        out.time_signatures.append(event)
    return out
