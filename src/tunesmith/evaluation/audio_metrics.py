"""Audio metrics on piano-key energies (numpy only): what a chunk of keys sounds like, and how close a
generated set of chunks is to a real one.

Input everywhere: keys (C, K, T) in [0, 1] (C channels, K keys, T frames of `frame_seconds`), channels
averaged first. Per chunk (`chunk_features`):
- key_share (K,): each key's share of the chunk's energy (the per-key energy distribution)
- onset_rate: note onsets per second, an onset being a key whose value rises by more than ONSET_RISE
  from one frame to the next, to ACTIVE_LEVEL or more, after not doing so in the frame before
- silence: share of frames whose loudest key is below SILENCE_LEVEL
- flatness: spectral flatness over the keys (geometric / arithmetic mean of a frame's energies, mean over
  sounding frames): 1 for noise, near 0 for a few clear notes
- polyphony: keys above ACTIVE_LEVEL per sounding frame; centroid: energy-weighted mean key number

Set against set (`compare_key_sets`): the overlapping area (OA, `density.overlapping_area`) of each scalar
feature's distribution over chunks; the key-energy overlap = the mean over keys, weighted by the
reference's energy share, of the OA of that key's share over chunks (1: every key carries energy as
often and as much as in the reference); the profile intersection sum_k min(p_k, q_k) of the two sets'
mean key shares; and the Frechet distance of the chunks' key-share vectors. `with_ceiling` adds the
same numbers for one half of the reference against the other (real against real: the best a model can
expect on sets of that size).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tunesmith.evaluation.density import frechet_distance, overlapping_area

# Levels for pianokeys' default "db" scale (value = 1 + dB / 80, a full-scale sine at 1): in rendered and
# recorded music peaking at -1 dBFS, notes sit at 0.6-0.8, partials and leakage at 0.3-0.5.
SILENCE_LEVEL = 0.3  # -56 dB: a frame whose loudest key stays below this is silent
ACTIVE_LEVEL = 0.55  # -36 dB: a key this loud is sounding (polyphony)
ONSET_RISE = 0.15  # 12 dB up within one 20-ms frame, to at least ACTIVE_LEVEL: a note starts
SCALARS = ("onset_rate", "silence", "flatness", "polyphony", "centroid")


def _mono(keys: np.ndarray) -> np.ndarray:
    keys = np.asarray(keys, dtype=np.float64)
    return keys.mean(0) if keys.ndim == 3 else keys


def chunk_features(keys: np.ndarray, frame_seconds: float, lowest_key: int = 1) -> dict[str, np.ndarray | float]:
    """The features of one chunk of keys (C, K, T) or (K, T); see the module docstring."""
    x = _mono(keys)
    k, t = x.shape
    total = x.sum()
    loudest = x.max(0)
    sounding = loudest >= SILENCE_LEVEL
    rise = (np.diff(x, axis=1) > ONSET_RISE) & (x[:, 1:] >= ACTIVE_LEVEL)  # (K, T - 1)
    onsets = rise[:, 1:] & ~rise[:, :-1]
    frames = x[:, sounding]
    flatness = (np.exp(np.log(frames + 1e-6).mean(0)) / (frames.mean(0) + 1e-6)).mean() if frames.size else 1.0
    return {
        "key_share": x.sum(1) / total if total > 0 else np.zeros(k),
        "onset_rate": float((onsets.sum() + rise[:, 0].sum()) / (t * frame_seconds)),
        "silence": float(1.0 - sounding.mean()),
        "flatness": float(flatness),
        "polyphony": float((frames >= ACTIVE_LEVEL).sum(0).mean()) if frames.size else 0.0,
        "centroid": float((x.sum(1) * np.arange(lowest_key, lowest_key + k)).sum() / total) if total > 0 else 0.0,
    }


def chunk_table(chunks: Sequence[np.ndarray], frame_seconds: float, lowest_key: int = 1) -> dict[str, np.ndarray]:
    """Features of many chunks: key_share (n, K), each scalar (n,)."""
    rows = [chunk_features(c, frame_seconds, lowest_key) for c in chunks]
    if not rows:
        raise ValueError("no chunks to measure")
    return {name: np.array([r[name] for r in rows]) for name in ("key_share", *SCALARS)}


def split_chunks(arrays: Sequence[np.ndarray], frames: int, hop: int | None = None) -> list[np.ndarray]:
    """Chunks of `frames` frames (every `hop`, default `frames`) cut from key arrays (..., K, F) of any
    length; a shorter remainder is left out, as are chunks in which no key reaches SILENCE_LEVEL."""
    hop = hop or frames
    return [a[..., s : s + frames] for a in arrays for s in range(0, a.shape[-1] - frames + 1, hop)
            if np.max(a[..., s : s + frames], initial=0.0) >= SILENCE_LEVEL]


def key_overlaps(reference: np.ndarray, generated: np.ndarray) -> np.ndarray:
    """(K,) the OA of each key's share over chunks (0 for a key the reference never sounds); reference,
    generated: key_share tables (n, K) and (m, K)."""
    weights = reference.mean(0)
    return np.array([overlapping_area(reference[:, k], generated[:, k]) if weights[k] > 0 else 0.0
                     for k in range(reference.shape[1])])


def key_energy_overlap(reference: np.ndarray, generated: np.ndarray) -> float:
    """Mean over keys, weighted by the reference's mean share, of `key_overlaps`."""
    weights = reference.mean(0)
    if weights.sum() <= 0:
        return 0.0
    return float((key_overlaps(reference, generated) * weights).sum() / weights.sum())


def compare_tables(reference: dict[str, np.ndarray], generated: dict[str, np.ndarray]) -> dict[str, float]:
    """Set-vs-set numbers (see the module docstring) for two chunk tables."""
    p, q = reference["key_share"].mean(0), generated["key_share"].mean(0)
    out = {"key_energy_overlap": key_energy_overlap(reference["key_share"], generated["key_share"]),
           "key_profile_intersection": float(np.minimum(p, q).sum())}
    if len(reference["key_share"]) >= 2 and len(generated["key_share"]) >= 2:
        out["key_frechet"] = frechet_distance(reference["key_share"], generated["key_share"])
    for name in SCALARS:
        out[f"{name}_oa"] = overlapping_area(reference[name], generated[name])
    return out


def summary(table: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean of each scalar feature over a set's chunks."""
    return {name: float(np.mean(table[name])) for name in SCALARS}


def compare_key_sets(reference: Sequence[np.ndarray], generated: Sequence[np.ndarray], frame_seconds: float,
                     lowest_key: int = 1, with_ceiling: bool = True) -> dict[str, dict[str, float]]:
    """{"generated": generated vs reference, "ceiling": first vs second half of the reference (when it
    has 4 chunks or more and `with_ceiling`), "means": {"reference": ..., "generated": ...}} for two sets
    of chunks (each (C, K, T) or (K, T))."""
    ref = chunk_table(reference, frame_seconds, lowest_key)
    gen = chunk_table(generated, frame_seconds, lowest_key)
    out = {"generated": compare_tables(ref, gen), "means": {"reference": summary(ref), "generated": summary(gen)}}
    if with_ceiling and len(reference) >= 4:
        half = len(reference) // 2  # reference chunks come file by file: halves share few files
        first, second = (chunk_table(part, frame_seconds, lowest_key) for part in (reference[:half], reference[half:]))
        out["ceiling"] = compare_tables(first, second)
    return out
