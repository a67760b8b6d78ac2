"""Checks on a parsed score, in two stages; each raises `SkipFile("category: detail")`.

`check_size` runs in the guarded worker right after symusic, before any numpy array exists: note
count and ticks per quarter. `check_piece` runs on the score's piece arrays (`cache_writer.
piece_arrays`, bounded by the note cap): tick range, tempo map, meters, length in seconds, note
durations, notes per tick. Both run in the guarded worker: `read_midi` through `check_score`,
ingest on the arrays the worker packs (`workers.handle_task`), so ingest's parent only stores them.
"""

from __future__ import annotations

import numpy as np
from symusic import Score

from tunesmith.core.errors import SkipFile
from tunesmith.io.midi import Limits

DEFAULT_MSPQ = 500_000  # µs per quarter before the first tempo event (120 qpm, the MIDI default)
TICK_OVERFLOW = "tick overflow: events lie past tick 2147483647"


def check_size(score: Score, limits: Limits) -> None:
    """Note count and ticks per quarter: the checks that need no array."""
    n_notes = score.note_num()
    if n_notes > limits.max_notes:
        raise SkipFile(f"too many notes: {n_notes} (cap {limits.max_notes})")
    if score.ticks_per_quarter <= 0:
        raise SkipFile(f"bad header: {score.ticks_per_quarter} ticks per quarter note")


def check_score(score: Score, limits: Limits) -> None:
    """Every check on a whole score, including the ticks of events the cache does not keep."""
    from tunesmith.io.cache_writer import piece_arrays

    check_size(score, limits)
    if score.start() < 0:  # delta times summed past 2**31 wrap around to negative ticks
        raise SkipFile(TICK_OVERFLOW)
    if score.end() > limits.max_ticks:
        raise SkipFile(f"too long: last event at tick {score.end()} (cap {limits.max_ticks})")
    check_piece(piece_arrays(score), limits)


def check_piece(piece: dict, limits: Limits) -> None:
    """Checks on piece arrays (ticks, µs per quarter): tick range, tempos, meters, length, notes."""
    start, duration = piece["start"], piece["duration"]
    times = [a for a in (start, piece["tempo_time"], piece["ts_time"]) if len(a)]
    if any(a.min() < 0 for a in times) or (len(duration) and duration.min() < 0):
        raise SkipFile(TICK_OVERFLOW)
    end = max([int((start.astype(np.int64) + duration).max()) if len(start) else 0]
              + [int(a.max()) for a in times[1:]] + [0])
    if end > limits.max_ticks:
        raise SkipFile(f"too long: last event at tick {end} (cap {limits.max_ticks})")
    time, mspq = _sorted_tempo_map(piece["tempo_time"], piece["tempo_mspq"])
    _check_tempos(time, mspq, limits)
    _check_time_signatures(piece["ts_time"], piece["ts_numerator"], piece["ts_denominator"])
    seconds = tempo_map_seconds(end, piece["tpq"], time, mspq)
    if seconds > limits.max_seconds:
        raise SkipFile(f"too long: {seconds / 3600:.1f} hours (cap {limits.max_seconds / 3600:.1f} hours)")
    check_notes_per_tick(start, limits)


def _sorted_tempo_map(time: np.ndarray, mspq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tempo event ticks and µs per quarter as int64, sorted by tick."""
    time, mspq = time.astype(np.int64), mspq.astype(np.int64)
    if len(time) > 1 and (time[1:] < time[:-1]).any():
        order = np.argsort(time, kind="stable")
        time, mspq = time[order], mspq[order]
    return time, mspq


def _check_tempos(time: np.ndarray, mspq: np.ndarray, limits: Limits) -> None:
    if not len(mspq) or 6e7 / max(int(mspq.min()), 1e-9) <= limits.max_qpm:
        return
    i = int(mspq.argmin())
    if mspq[i] <= 0:
        raise SkipFile(f"invalid tempo: {mspq[i]} microseconds per quarter at tick {time[i]}")
    raise SkipFile(f"invalid tempo: {6e7 / mspq[i]:.0f} quarters per minute at tick {time[i]} "
                   f"(cap {limits.max_qpm:.0f})")


def _check_time_signatures(time: np.ndarray, numerator: np.ndarray, denominator: np.ndarray) -> None:
    num, den = numerator.astype(np.int64), denominator.astype(np.int64)
    # symusic stores 2**dd in a byte: dd >= 8 wraps to 0; valid denominators are 1, 2, 4 ... 128.
    bad = (num <= 0) | (den <= 0) | ((den & (den - 1)) != 0)
    if bad.any():
        i = int(bad.argmax())
        raise SkipFile(f"invalid time signature: {num[i]}/{den[i]} at tick {time[i]}")


def tempo_map_seconds(end_tick: int, tpq: int, time: np.ndarray, mspq: np.ndarray) -> float:
    """Seconds from tick 0 to `end_tick` through a tempo map sorted by tick (ticks, µs per quarter;
    120 qpm before the first event). Tempo events after `end_tick` contribute nothing."""
    if not len(time):
        return end_tick * DEFAULT_MSPQ / 1e6 / tpq
    edges = np.minimum(np.append(time, end_tick), end_tick)  # each tempo lasts to the next edge
    total_us = int(edges[0]) * DEFAULT_MSPQ + int(np.diff(edges) @ mspq)
    return total_us / 1e6 / tpq


def score_seconds(score: Score) -> float:
    """Length of `score` in seconds: its last tick through its tempo map."""
    tempos = score.tempos.numpy()
    time, mspq = _sorted_tempo_map(tempos["time"], tempos["mspq"])
    return tempo_map_seconds(max(score.end(), 0), score.ticks_per_quarter, time, mspq)


def tick_at_seconds(score: Score, seconds: float) -> int:
    """The tick reached after `seconds` through the score's tempo map (the inverse of `score_seconds`,
    rounded down; 120 qpm before the first tempo event, the last tempo held past the end)."""
    tempos = score.tempos.numpy()
    time, mspq = _sorted_tempo_map(tempos["time"], tempos["mspq"])
    edges = np.concatenate([[0], time])  # tempo segments start here (ticks)
    rates = np.concatenate([[DEFAULT_MSPQ], mspq]).astype(np.float64)  # µs per quarter in each
    elapsed = np.concatenate([[0.0], np.cumsum(np.diff(edges) * rates[:-1])])  # ticks x µs/quarter
    target = max(seconds, 0.0) * 1e6 * score.ticks_per_quarter
    i = int(np.searchsorted(elapsed, target, side="right")) - 1
    return int(edges[i] + (target - elapsed[i]) // max(rates[i], 1.0))


def check_notes_per_tick(start: np.ndarray, limits: Limits) -> None:
    """SkipFile when more than `max_notes_per_tick` of the note starts `start` (ticks) are equal."""
    cap = limits.max_notes_per_tick
    if len(start) <= cap:
        return
    # Stable sort is timsort here: symusic keeps each track's notes in time order, so it merges a few
    # sorted runs (4x faster than quicksort on real files). The sorted values are the same.
    times = np.sort(start, kind="stable")
    # More than `cap` equal values exist iff some sorted value equals the one `cap` places later.
    crowded = np.flatnonzero(times[cap:] == times[:-cap])
    if len(crowded):
        tick = times[crowded[0]]
        count = int(np.count_nonzero(times == tick))
        raise SkipFile(f"too many simultaneous notes: {count} start on tick {tick} (cap {cap})")


def clean_meta(score: Score) -> Score:
    """Drop key signatures outside -7..7 sharps/flats or with a mode other than major/minor.

    They carry no notes, so the score stays usable; everything else is kept as parsed.
    """
    keys = list(score.key_signatures)
    kept = [ks for ks in keys if -7 <= ks.key <= 7 and ks.tonality in (0, 1)]
    if len(kept) < len(keys):
        score.key_signatures.clear()
        score.key_signatures.extend(kept)
    return score
