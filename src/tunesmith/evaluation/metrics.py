"""Per-piece metrics: pure functions from a `Score` (ticks) to a number or a small histogram.

Every metric looks at all tracks together (polyphonic and multitrack music alike); pitch metrics skip
drum tracks, whose "pitches" name instruments. A metric that is undefined for a piece (no notes, no
drums, a single bar) returns NaN (or a NaN vector), and set comparisons drop that piece for that
metric. Times are measured in quarter notes unless a name says otherwise, so tempo and the file's
ticks-per-quarter do not change any value.

References (short names used in the docstrings):
  [YL]  L.-C. Yang and A. Lerch, "On the evaluation of generative models in music", Neural Computing
        and Applications 32, 2020 (the MGEval features).
  [MG]  H.-W. Dong et al., "MuseGAN: multi-track sequential GANs for symbolic music generation and
        accompaniment", AAAI 2018.
  [JT]  S.-L. Wu and Y.-H. Yang, "The Jazz Transformer on the front line", ISMIR 2020.
  [CR]  O. Mogren, "C-RNN-GAN: continuous recurrent neural networks with adversarial training", 2016.
  [HA]  C. Harte, M. Sandler and M. Gasser, "Detecting harmonic change in musical audio", ACM MM
        workshop on audio and music computing multimedia, 2006 (tonal centroid).
The rhythm and drum metrics (groove, drum pattern) are in `evaluation/rhythm.py`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from symusic import Score

from tunesmith.evaluation.rhythm import drum_pattern_consistency, groove_consistency
from tunesmith.evaluation.timeline import active_pitch_profile, bar_edges, notes, skylines, spans_per_cell

_MAJOR = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], bool)
_NATURAL_MINOR = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0], bool)
# [YL] note-length classes, in quarters: whole, half, quarter, 8th, 16th, dotted half, dotted quarter,
# dotted 8th, dotted 16th, half triplet, quarter triplet, 8th triplet.
NOTE_LENGTH_CLASSES = (4.0, 2.0, 1.0, 0.5, 0.25, 3.0, 1.5, 0.75, 0.375, 4 / 3, 2 / 3, 1 / 3)


def _entropy_bits(prob: np.ndarray) -> float:
    prob = prob[prob > 0]
    return float(-(prob * np.log2(prob)).sum())


def pitch_class_histogram(score: Score) -> np.ndarray:
    """Share of pitched notes in each pitch class C..B: `h[c] = #(notes with pitch % 12 == c) / #notes`.

    Shape (12,), sums to 1 (NaN vector when there is no pitched note). [YL] "total pitch class histogram".
    """
    pitch = notes(score, pitched=True)["pitch"]
    if len(pitch) == 0:
        return np.full(12, np.nan)
    return np.bincount(pitch % 12, minlength=12) / len(pitch)


def pitch_class_entropy(score: Score) -> float:
    """Shannon entropy of the pitch-class histogram, in bits: `-sum_c h[c] log2 h[c]` (0 to log2 12).

    [JT]; equals `muspy.pitch_class_entropy`.
    """
    hist = pitch_class_histogram(score)
    return float("nan") if np.isnan(hist).any() else _entropy_bits(hist)


def used_pitches(score: Score) -> float:
    """Number of distinct MIDI pitches among pitched notes. [YL] "total used pitch" (PC)."""
    return float(len(np.unique(notes(score, pitched=True)["pitch"])))


def used_pitch_classes(score: Score) -> float:
    """Number of distinct pitch classes (0-12) among pitched notes; `muspy.n_pitch_classes_used`."""
    return float(len(np.unique(notes(score, pitched=True)["pitch"] % 12)))


def note_count(score: Score) -> float:
    """Number of pitched notes. [YL] "total used note" (NC)."""
    return float(len(notes(score, pitched=True)["pitch"]))


def _pitches_in_bars(score: Score) -> np.ndarray:
    """Boolean (n_bars, 128): pitch p sounds somewhere in bar i (pitched notes only)."""
    table = notes(score, pitched=True)
    edges = bar_edges(score, int(table["end"].max()))
    index, bar, _ = spans_per_cell(table["start"], table["end"], edges)
    grid = np.zeros((len(edges) - 1, 128), bool)
    grid[bar, table["pitch"][index]] = True
    return grid


def used_pitches_per_bar(score: Score) -> float:
    """Mean over bars of the number of distinct pitches sounding in the bar (empty bars count 0).

    [YL] "bar used pitch". Bars follow the score's time signatures (4/4 when it has none).
    """
    if note_count(score) == 0:
        return float("nan")
    return float(_pitches_in_bars(score).sum(axis=1).mean())


def used_pitch_classes_per_bar(score: Score) -> float:
    """Mean over bars of the number of distinct pitch classes sounding in the bar (0-12)."""
    if note_count(score) == 0:
        return float("nan")
    grid = _pitches_in_bars(score)
    classes = np.zeros((len(grid), 12), bool)
    for pc in range(12):
        classes[:, pc] = grid[:, pc::12].any(axis=1)
    return float(classes.sum(axis=1).mean())


def _empty_cell_rate(start: np.ndarray, end: np.ndarray, edges: np.ndarray) -> float:
    _, cell, _ = spans_per_cell(start, end, edges)
    return 1.0 - len(np.unique(cell)) / (len(edges) - 1)


def empty_beat_rate(score: Score) -> float:
    """Share of beats (quarter notes) in which no note of any track sounds: `#empty beats / #beats`.

    The piece lasts until its last note ends; a beat is `[k, k+1)` quarters. [MG]; `muspy.empty_beat_rate`
    agrees when no note ends exactly on a beat line (muspy also counts the beat a note ends on, and one
    beat past the end).
    """
    table = notes(score)
    if len(table["start"]) == 0:
        return float("nan")
    tpq = score.ticks_per_quarter
    n_beats = -(-int(table["end"].max()) // tpq)
    return _empty_cell_rate(table["start"], table["end"], np.arange(n_beats + 1) * tpq)


def empty_bar_rate(score: Score) -> float:
    """Share of bars in which no note of any track sounds: `#empty bars / #bars`. [MG] "EB"."""
    table = notes(score)
    if len(table["start"]) == 0:
        return float("nan")
    return _empty_cell_rate(table["start"], table["end"], bar_edges(score, int(table["end"].max())))


def qualified_note_rate(score: Score, min_quarters: float = 0.125) -> float:
    """Share of pitched notes at least a 32nd note long: `#(duration >= min_quarters) / #notes`. [MG] "QN".

    MuseGAN counts notes of 3 or more steps at 24 steps per beat, i.e. `min_quarters = 1/8`.
    """
    table = notes(score, pitched=True)
    if len(table["pitch"]) == 0:
        return float("nan")
    return float(np.mean(table["duration"] >= min_quarters * score.ticks_per_quarter))


def polyphony(score: Score) -> float:
    """Mean number of distinct pitches sounding, over the time when at least one sounds.

    `sum_t n(t) / #{t : n(t) > 0}` with `n(t)` the number of sounding pitched pitches at tick t,
    computed exactly from note boundaries (no piano roll). [MG]; equals `muspy.polyphony`.
    """
    ticks, count = active_pitch_profile(notes(score, pitched=True))
    sounding = ticks[count > 0].sum()
    return float((ticks * count).sum() / sounding) if sounding else float("nan")


def pitch_range(score: Score) -> float:
    """Highest minus lowest pitched MIDI pitch, in semitones. [YL] "PR"; equals `muspy.pitch_range`."""
    pitch = notes(score, pitched=True)["pitch"]
    return float(pitch.max() - pitch.min()) if len(pitch) else float("nan")


def average_pitch_shift(score: Score) -> float:
    """Mean absolute interval, in semitones, between consecutive melody notes of each track.

    `mean |p[k+1] - p[k]|` over every track's skyline (its top pitch at each onset), pooled over tracks.
    [YL] "average pitch interval" (PI); for monophonic tracks it is exactly MGEval's definition.
    """
    shifts = [np.abs(np.diff(line)) for line in skylines(notes(score, pitched=True))]
    shifts = np.concatenate(shifts) if shifts else np.zeros(0)
    return float(shifts.mean()) if len(shifts) else float("nan")


def average_ioi(score: Score) -> float:
    """Mean inter-onset interval in quarters: mean difference between consecutive distinct onset times.

    [YL] "IOI" (MGEval measures seconds over all onsets; quarters keep tempo out, and notes struck
    together share one onset so chords do not add zero intervals).
    """
    onsets = np.unique(notes(score, pitched=True)["start"])
    if len(onsets) < 2:
        return float("nan")
    return float(np.diff(onsets).mean() / score.ticks_per_quarter)


def note_length_histogram(score: Score) -> np.ndarray:
    """Share of pitched notes in each of the 12 [YL] note-length classes (`NOTE_LENGTH_CLASSES`).

    A note falls into the class nearest to its duration in quarters. Shape (12,), sums to 1. [YL] "NLH".
    """
    table = notes(score, pitched=True)
    if len(table["pitch"]) == 0:
        return np.full(12, np.nan)
    quarters = table["duration"] / score.ticks_per_quarter
    nearest = np.argmin(np.abs(quarters[:, None] - np.asarray(NOTE_LENGTH_CLASSES)[None, :]), axis=1)
    return np.bincount(nearest, minlength=12) / len(nearest)


def pitch_class_transition_matrix(score: Score) -> np.ndarray:
    """Share of melodic steps from pitch class i to pitch class j, along every track's skyline.

    Shape (12, 12), sums to 1 (NaN when no track has two onsets). [YL] "PCTM".
    """
    counts = np.zeros((12, 12))
    for line in skylines(notes(score, pitched=True)):
        np.add.at(counts, (line[:-1] % 12, line[1:] % 12), 1)
    total = counts.sum()
    return counts / total if total else np.full((12, 12), np.nan)


def scale_consistency(score: Score) -> float:
    """Largest share of pitched notes inside one major or natural-minor scale, over the 24 scales.

    `max_{root, mode} #(notes in scale) / #notes`. [CR]; equals `muspy.scale_consistency`.
    """
    hist = pitch_class_histogram(score)
    if np.isnan(hist).any():
        return float("nan")
    scales = [np.roll(mask, root) for mask in (_MAJOR, _NATURAL_MINOR) for root in range(12)]
    return float(max(hist[scale].sum() for scale in scales))


def _tonal_centroid_matrix() -> np.ndarray:
    """[HA] 6 x 12 projection of a chroma vector onto circles of fifths, minor and major thirds."""
    angle = np.arange(12)
    rows = []
    for radius, step in ((1.0, 7 * np.pi / 6), (1.0, 3 * np.pi / 2), (0.5, 2 * np.pi / 3)):
        rows += [radius * np.sin(angle * step), radius * np.cos(angle * step)]
    return np.asarray(rows)


def tonal_distance(score: Score) -> float:
    """Mean harmonic distance between pairs of pitched tracks, per bar. [MG] "TD", with [HA]'s centroid.

    In each bar where both tracks sound, each track's duration-weighted chroma `c` (12 bins) gives a
    tonal centroid `T c / |c|_1` (T: 6 x 12 matrix of [HA]); the distance is the Euclidean norm of the
    difference. The value is the mean over such (bar, track pair). NaN with fewer than two pitched tracks.
    """
    table = notes(score, pitched=True)
    tracks = np.unique(table["track"])
    if len(tracks) < 2:
        return float("nan")
    edges = bar_edges(score, int(table["end"].max()))
    index, bar, overlap = spans_per_cell(table["start"], table["end"], edges)
    slot = np.searchsorted(tracks, table["track"][index])
    chroma = np.zeros((len(tracks), len(edges) - 1, 12))
    np.add.at(chroma, (slot, bar, table["pitch"][index] % 12), overlap)
    mass = chroma.sum(axis=2, keepdims=True)
    centroid = (chroma / np.where(mass > 0, mass, 1)) @ _tonal_centroid_matrix().T
    distances = [
        np.linalg.norm(centroid[a] - centroid[b], axis=1)[(mass[a, :, 0] > 0) & (mass[b, :, 0] > 0)]
        for a in range(len(tracks)) for b in range(a + 1, len(tracks))
    ]
    distances = np.concatenate(distances)
    return float(distances.mean()) if len(distances) else float("nan")


Metric = Callable[[Score], "float | np.ndarray"]

# Every per-piece metric by name, in report order. Scalars are compared by absolute difference,
# histograms and matrices by Euclidean distance (`evaluation/compare.py`).
METRICS: dict[str, Metric] = {
    "pitch_class_histogram": pitch_class_histogram,
    "pitch_class_entropy": pitch_class_entropy,
    "pitch_class_transition_matrix": pitch_class_transition_matrix,
    "used_pitches": used_pitches,
    "used_pitch_classes": used_pitch_classes,
    "used_pitches_per_bar": used_pitches_per_bar,
    "used_pitch_classes_per_bar": used_pitch_classes_per_bar,
    "note_count": note_count,
    "pitch_range": pitch_range,
    "average_pitch_shift": average_pitch_shift,
    "average_ioi": average_ioi,
    "note_length_histogram": note_length_histogram,
    "qualified_note_rate": qualified_note_rate,
    "polyphony": polyphony,
    "empty_beat_rate": empty_beat_rate,
    "empty_bar_rate": empty_bar_rate,
    "scale_consistency": scale_consistency,
    "groove_consistency": groove_consistency,
    "drum_pattern_consistency": drum_pattern_consistency,
    "tonal_distance": tonal_distance,
}


def compute_metrics(score: Score, names: tuple[str, ...] | None = None) -> dict[str, float | np.ndarray]:
    """Every metric of `METRICS` (or those in `names`) for one piece: name -> float or ndarray."""
    return {name: METRICS[name](score) for name in (names or tuple(METRICS))}
