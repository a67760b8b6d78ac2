"""Key energies -> notes: a simple transcription so that symbolic metrics apply to generated audio.

`keys_to_score(keys, rep)` picks notes from a pianokeys array (channels, n_keys, n_frames):
1. level (dB) per key and frame, averaged over channels (as amplitudes);
2. a key sounds where its level is within `threshold_db` (30 dB) of the loudest value of the whole
   array, within `frame_db` (20 dB) of the loudest key of its frame, above `floor_db` (re a
   full-scale sine), and a peak across keys (a tone also lights its neighbours, whose Gaussian
   masks overlap below C4);
3. harmonics are not notes: a key 12, 19, 24, 28, 31, 34 or 36 semitones above loud keys is
   dropped unless it is louder than their summed power plus `harmonic_db` (-4.5 dB: a piano's partials
   are weaker than that; so an octave played 4.5 dB softer than the note below is lost);
4. runs of sounding frames are notes; within a run, a rise of `onset_db` after the level has peaked
   and fallen starts a new one (a repeated key), and so does a rise of 2 dB in a frame where the loud
   keys rise together (a strike: a key struck again while it still sounds barely rises); notes
   shorter than `min_frames` (80 ms: piano hammer noise lights low keys for 40-60 ms) are dropped.
The defaults were chosen on FluidSynth piano renders of Bach chorales; the benchmark
(benchmarks/audio_representation.py) gives precision and recall on renders it has not seen.
Onsets are placed where the level first comes within 6 dB of the note's peak (the band filter's
Gaussian response spreads a sharp attack over about +-13 ms, so the first sounding frame is early).
Pitch is the key's MIDI number (key + 20); times go to ticks at the representation's tempo.

`match_notes(reference, estimate, ...)` scores a transcription against the notes it should find
(precision, recall, F1 over pitch + onset within a tolerance, each note matched at most once).
"""

from __future__ import annotations

import numpy as np
from symusic import Score

from tunesmith.core.score import make_track, new_score
from tunesmith.io.synth import notes_in_seconds

HARMONICS = (12, 19, 24, 28, 31, 34, 36)  # semitones from a fundamental to its partials 2-8
PEAK_WINDOW = 3  # frames after a note's first frame searched for its peak (onset placement)
ONSET_DB = 6.0
REPEAT_DB = 2.0  # rise that re-starts a sounding key at a frame where many keys rise together


def keys_to_score(keys: np.ndarray, rep, threshold_db: float = -30.0, floor_db: float = -60.0,
                  onset_db: float = 6.0, min_frames: int = 4, harmonic_db: float = -4.5,
                  frame_db: float = -20.0) -> Score:
    """A one-track piano Score (ticks at rep.config.tpq, one tempo rep.config.tempo_qpm) transcribed
    from `keys` (channels, n_keys, n_frames) values of the pianokeys representation `rep`.
    Returns an empty score (no notes) for silence."""
    c = rep.config
    level = _levels(rep.amplitudes(keys).mean(axis=0))
    sounding = _sounding(level, threshold_db, floor_db, harmonic_db, frame_db)
    onsets = _onset_frames(level, threshold_db)
    pitch, start, end, loud = [], [], [], []
    for k in range(level.shape[0]):
        for first, last in _notes_of_key(level[k], sounding[k], onset_db, min_frames, onsets):
            pitch.append(c.lowest_key + k + 20)
            start.append(_onset_frame(level[k], first, last))
            end.append(last + 1)
            loud.append(level[k, first: last + 1].max())
    score = new_score(tpq=c.tpq, qpm=c.tempo_qpm)
    if not pitch:
        return score
    ticks_per_frame = c.frame_seconds * c.tempo_qpm / 60 * c.tpq
    start_tick = np.rint(np.array(start) * ticks_per_frame).astype(np.int64)
    end_tick = np.rint(np.array(end) * ticks_per_frame).astype(np.int64)
    top = level.max()
    velocity = np.clip(np.rint(40 + 87 * (1 + (np.array(loud) - top) / -threshold_db)), 1, 127)
    order = np.lexsort((pitch, start_tick))
    score.tracks.append(make_track(np.array(pitch)[order], start_tick[order],
                                   np.maximum(end_tick - start_tick, 1)[order], velocity[order].astype(int),
                                   name="Transcription"))
    return score


def _levels(amplitude: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.maximum(20 * np.log10(amplitude), -300.0)


def _sounding(level: np.ndarray, threshold_db: float, floor_db: float, harmonic_db: float,
              frame_db: float = -np.inf) -> np.ndarray:
    """(n_keys, n_frames) bool: loud enough, a peak across keys, and not a harmonic of a sounding key."""
    loud = (level >= level.max() + threshold_db) & (level >= floor_db)
    loud &= level >= level.max(axis=0, keepdims=True) + frame_db
    padded = np.pad(level, ((1, 1), (0, 0)), constant_values=-np.inf)
    peak = (level >= padded[:-2]) & (level >= padded[2:])
    # Power the loud keys below could put here as partials (two fundamentals can share one: G4's
    # second and C4's third partial are both G5), against which a candidate must stand out.
    below = np.zeros(level.shape)
    for h in HARMONICS:  # the key h below is loud (a peak or not: its attack may still be masked)
        if h < level.shape[0]:
            below[h:] += np.where(loud[:-h], 10 ** (level[:-h] / 10), 0.0)
    with np.errstate(divide="ignore"):
        partial = level <= 10 * np.log10(below) + harmonic_db
    return loud & peak & ~partial


def _onset_frames(level: np.ndarray, threshold_db: float) -> np.ndarray:
    """(n_frames,) bool: frames (and their neighbours) where the loud keys rise together far more
    than usual (summed dB rises, a median + 6 MAD outlier and a local peak): a hammer strikes."""
    rise = np.maximum(np.diff(level, axis=1, prepend=level[:, :1]), 0.0)
    flux = np.where(level > level.max() + threshold_db, np.minimum(rise, 30.0), 0.0).sum(axis=0)
    median = np.median(flux)
    padded = np.r_[0.0, flux, 0.0]
    onset = (flux > median + 6 * np.median(np.abs(flux - median)) + 1e-9) & (flux >= padded[:-2]) & (flux >= padded[2:])
    return onset | np.r_[onset[1:], False] | np.r_[False, onset[:-1]]


def _notes_of_key(level: np.ndarray, sounding: np.ndarray, onset_db: float, min_frames: int,
                  onsets: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) frames of each note of one key: runs of sounding frames, split where the level
    rises by `onset_db` over the lowest of the two frames before, or by REPEAT_DB at an onset frame
    (a key struck again while it still sounds barely rises, but the strike shows across the keys)."""
    notes = []
    edges = np.diff(np.r_[0, sounding.astype(np.int8), 0])
    for first, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
        cut, rising = [first], True
        for m in range(first + 1, stop):
            if rising:  # an attack rises over a few frames: no new note before it has peaked
                rising = level[m] > level[m - 1]
                continue
            step = level[m] - min(level[m - 2], level[m - 1])
            if (step >= onset_db or (onsets[m] and step >= REPEAT_DB)) and m - cut[-1] >= min_frames:
                cut.append(m)
                rising = True
        for a, b in zip(cut, cut[1:] + [stop], strict=True):
            if b - a >= min_frames:
                notes.append((a, b - 1))
    return notes


def _onset_frame(level: np.ndarray, first: int, last: int) -> int:
    """The first frame of a note whose level is within ONSET_DB of its peak over its first frames."""
    window = level[first: min(last, first + PEAK_WINDOW) + 1]
    return first + int(np.argmax(window >= window.max() - ONSET_DB))


def canonical_score(score: Score, rep) -> Score:
    """The notes a transcription of `score` can find: pitched (not drums), within the key range, at
    least two frames long; one track at rep's tempo and tpq, onsets and ends on the frame grid."""
    c = rep.config
    notes = notes_in_seconds(score)
    low, high = c.lowest_key + 20, c.highest_key + 20
    keep = ~notes["is_drum"] & (notes["pitch"] >= low) & (notes["pitch"] <= high)
    keep &= notes["duration"] >= 2 * c.frame_seconds
    first = np.rint(notes["start"][keep] / c.frame_seconds)
    last = np.rint((notes["start"] + notes["duration"])[keep] / c.frame_seconds)
    ticks_per_frame = c.frame_seconds * c.tempo_qpm / 60 * c.tpq
    out = new_score(tpq=c.tpq, qpm=c.tempo_qpm)
    if keep.any():
        start = np.rint(first * ticks_per_frame).astype(np.int64)
        duration = np.maximum(np.rint((last - first) * ticks_per_frame).astype(np.int64), 1)
        velocity = notes["velocity"][keep].astype(int)
        out.tracks.append(make_track(notes["pitch"][keep], start, duration, velocity, name="Canonical"))
    return out


def match_notes(reference: Score, estimate: Score, onset_seconds: float = 0.05) -> dict[str, float]:
    """Precision, recall and F1 of `estimate`'s notes against `reference`'s: a pair matches when the
    pitches are equal and the onsets (in seconds, through each score's tempo map) differ by at most
    `onset_seconds`; each note is matched once (closest onsets first). Drum notes are left out."""
    ref, est = _onsets(reference), _onsets(estimate)
    pairs = sorted((abs(ts - tr), i, j) for i, (pr, tr) in enumerate(ref) for j, (pe, ts) in enumerate(est)
                   if pr == pe and abs(ts - tr) <= onset_seconds)
    used_r, used_e = set(), set()
    for _, i, j in pairs:
        if i not in used_r and j not in used_e:
            used_r.add(i)
            used_e.add(j)
    hits = len(used_r)
    precision = hits / len(est) if est else float(not ref)
    recall = hits / len(ref) if ref else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "matched": hits,
            "reference": len(ref), "estimate": len(est)}


def _onsets(score: Score) -> list[tuple[int, float]]:
    notes = notes_in_seconds(score)
    pitched = ~notes["is_drum"]
    return list(zip(notes["pitch"][pitched].tolist(), notes["start"][pitched].tolist(), strict=True))
