"""Checks on a parsed score, in two stages; each raises `SkipFile("category: detail")`.

`check_size` runs in the guarded worker right after symusic, before any numpy array exists: note
count and ticks per quarter. `check_piece` runs on the score's piece arrays (`packing.score_columns`,
bounded by the note cap): tick range, tempo map, meters, length in seconds, note durations, notes per
tick. Both run in the guarded worker: `read_midi` through `check_score`, ingest on the arrays it is
about to pack (`packing.pack_checked`), so that ingest's parent only stores them.
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
    from tunesmith.io.packing import score_columns

    check_size(score, limits)
    if score.start() < 0:  # delta times summed past 2**31 wrap around to negative ticks
        raise SkipFile(TICK_OVERFLOW)
    if score.end() > limits.max_ticks:
        raise SkipFile(f"too long: last event at tick {score.end()} (cap {limits.max_ticks})")
    check_piece(score_columns(score), limits)


def check_piece(piece: dict, limits: Limits) -> None:
    """Checks on piece arrays (ticks, µs per quarter): tick range, tempos, meters, length, notes.

    `piece` holds 'start', 'duration' (notes), 'tempo_time', 'tempo_mspq', 'ts_time', 'ts_numerator',
    'ts_denominator' and 'tpq' (`packing.unpack_piece`, or `packing.score_columns` before packing)."""
    start, duration = piece["start"], piece["duration"]
    note_end = 0
    if len(start):
        if _MIN(start) < 0 or _MIN(duration) < 0:
            raise SkipFile(TICK_OVERFLOW)
        note_end = int(_MAX(np.add(start, duration, dtype=np.int64)))
    maps = (piece["tempo_time"], piece["tempo_mspq"], piece["ts_time"], piece["ts_numerator"], piece["ts_denominator"])
    short = len(maps[0]) <= SHORT_MAP and len(maps[2]) <= SHORT_MAP
    seconds = (_check_short_maps if short else _check_maps)(note_end, piece["tpq"], *maps, limits=limits)
    if seconds > limits.max_seconds:
        raise SkipFile(f"too long: {seconds / 3600:.1f} hours (cap {limits.max_seconds / 3600:.1f} hours)")
    check_notes_per_tick(start, limits)


_MIN, _MAX = np.minimum.reduce, np.maximum.reduce  # the ufuncs, without ndarray.min's Python wrapper


# Tempo and meter maps this short are checked as Python lists: most files have a few events, and a
# numpy call costs more than the whole check of a few (on small files the checks were a fifth of the
# parser's time). `_check_maps` does the same checks with numpy, for long maps.
SHORT_MAP = 32


def _check_short_maps(note_end: int, tpq: int, tempo_time, tempo_mspq, ts_time, ts_numerator, ts_denominator,
                      limits: Limits) -> float:
    """`_check_maps` on lists: the same checks, in the same order, with the same messages."""
    time, mspq, ts = tempo_time.tolist(), tempo_mspq.tolist(), ts_time.tolist()
    if min(time, default=0) < 0 or min(ts, default=0) < 0:
        raise SkipFile(TICK_OVERFLOW)
    end = max(note_end, max(time, default=0), max(ts, default=0))
    if end > limits.max_ticks:
        raise SkipFile(f"too long: last event at tick {end} (cap {limits.max_ticks})")
    if any(b < a for a, b in zip(time[:-1], time[1:], strict=True)):  # sorted by tick, ties in file order (stable)
        order = sorted(range(len(time)), key=time.__getitem__)
        time, mspq = [time[k] for k in order], [mspq[k] for k in order]
    if mspq and 6e7 / max(min(mspq), 1e-9) > limits.max_qpm:
        i = mspq.index(min(mspq))
        _raise_tempo(time[i], mspq[i], limits)
    for tick, num, den in zip(ts, ts_numerator.tolist(), ts_denominator.tolist(), strict=True):
        if num <= 0 or den <= 0 or den & (den - 1):
            raise SkipFile(f"invalid time signature: {num}/{den} at tick {tick}")
    if not time:
        return end * DEFAULT_MSPQ / 1e6 / tpq
    edges = [min(t, end) for t in time] + [end]  # each tempo lasts to the next edge
    total_us = edges[0] * DEFAULT_MSPQ + sum((b - a) * m for a, b, m in zip(edges[:-1], edges[1:], mspq, strict=True))
    return total_us / 1e6 / tpq


def _check_maps(note_end: int, tpq: int, tempo_time, tempo_mspq, ts_time, ts_numerator, ts_denominator,
                limits: Limits) -> float:
    """Tick range of the tempo and meter maps (and the last tick overall), tempos, meters; the piece's
    length in seconds."""
    times = [a for a in (tempo_time, ts_time) if len(a)]
    if any(a.min() < 0 for a in times):
        raise SkipFile(TICK_OVERFLOW)
    end = max([note_end] + [int(a.max()) for a in times])
    if end > limits.max_ticks:
        raise SkipFile(f"too long: last event at tick {end} (cap {limits.max_ticks})")
    time, mspq = _sorted_tempo_map(tempo_time, tempo_mspq)
    _check_tempos(time, mspq, limits)
    _check_time_signatures(ts_time, ts_numerator, ts_denominator)
    return tempo_map_seconds(end, tpq, time, mspq)


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
    _raise_tempo(int(time[i]), int(mspq[i]), limits)


def _raise_tempo(tick: int, mspq: int, limits: Limits) -> None:
    if mspq <= 0:
        raise SkipFile(f"invalid tempo: {mspq} microseconds per quarter at tick {tick}")
    raise SkipFile(f"invalid tempo: {6e7 / mspq:.0f} quarters per minute at tick {tick} (cap {limits.max_qpm:.0f})")


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
