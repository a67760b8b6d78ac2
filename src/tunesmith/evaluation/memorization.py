"""Memorization check: does a generated piece copy (part of) a training piece, in any key?

Each piece becomes token sequences, one token per note after the first: `(pitch interval to the previous
note in semitones, inter-onset interval in 1/12 quarters)`. Intervals make the tokens
transposition-invariant, quarters make them tempo-invariant, and durations are left out because
piano-roll models often change them while copying. The sequences of a piece are the merged sequence of
all its pitched notes (in (onset, pitch) order) and, for multitrack pieces, each track's own sequence,
so a copied chorale is found whether the model wrote it as one track or four, and so is a copied voice.

Every n-gram of n tokens is hashed to 64 bits and kept in one sorted array over the training set. For a
generated piece a `searchsorted` gives the fraction of its n-grams found there (and in the single
training piece that shares most of them), and joining its matches by (training sequence, diagonal =
training position - generated position) gives the longest run of consecutive matching n-grams,
i.e. the longest shared span (r matching n-grams = r + n notes). Spans shorter than n + 1 notes are not
searched and read 0. N-grams that occur more than `MAX_OCCURRENCES` times in the training set count as
found but take no part in spans or in the closest-piece share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from symusic import Score

from tunesmith.evaluation.timeline import notes

IOI_STEPS_PER_QUARTER = 12  # 16ths and 8th triplets are whole steps
MAX_IOI_STEPS = 48  # rests longer than 4 quarters read as 4 quarters
# An n-gram found more often than this in the training set (a run of repeated 8th notes, a scale) says
# nothing about copying; leaving it out of the span join bounds its cost on large training sets.
MAX_OCCURRENCES = 1000
_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier of the polynomial hash


@dataclass(frozen=True)
class Thresholds:
    """When a generated piece counts as a copy: either test is enough.

    `fraction`: share of its n-grams found in one single training piece (in a large training set most
    n-grams of plain music occur *somewhere*, so the share over the whole set is reported but does not
    flag); `span_notes`: notes in its longest span shared with one training piece.
    """

    fraction: float = 0.5
    span_notes: int = 40


@dataclass(frozen=True)
class PieceMemorization:
    """Result for one generated piece: shares of its n-grams found in the training set and in the one
    training piece sharing most; `nearest` is the training piece holding the longest span."""

    piece: str
    n_notes: int
    fraction_found: float
    fraction_closest: float
    longest_span_notes: int
    nearest: str | None
    copied: bool

    def to_dict(self) -> dict:
        out = asdict(self)
        for key in ("fraction_found", "fraction_closest"):
            out[key] = None if np.isnan(out[key]) else round(out[key], 4)
        return out


def note_tokens(score: Score) -> list[np.ndarray]:
    """The piece's token sequences (int64): merged pitched notes first, then each pitched track if several.

    Token = `(interval + 128) * 64 + ioi_steps`, with ioi_steps the inter-onset interval rounded to
    1/12 quarter and clipped to `MAX_IOI_STEPS`; a sequence of k notes has k - 1 tokens.
    """
    table = notes(score, pitched=True)
    order = np.lexsort((table["pitch"], table["start"]))
    sequences = [_tokens(table["pitch"][order], table["start"][order], score.ticks_per_quarter)]
    tracks = np.unique(table["track"])
    if len(tracks) > 1:
        for track in tracks:
            keep = order[table["track"][order] == track]
            sequences.append(_tokens(table["pitch"][keep], table["start"][keep], score.ticks_per_quarter))
    return sequences


def _tokens(pitch: np.ndarray, start: np.ndarray, tpq: int) -> np.ndarray:
    interval = np.diff(pitch.astype(np.int64)) + 128
    ioi = np.clip(np.round(np.diff(start) * IOI_STEPS_PER_QUARTER / tpq), 0, MAX_IOI_STEPS).astype(np.int64)
    return interval * 64 + ioi


def ngram_hashes(tokens: np.ndarray, n: int) -> np.ndarray:
    """64-bit hash of every n-gram of `tokens` (length len - n + 1): polynomial hash, then murmur3's mix.

    Collisions are negligible: about 1e-9 for a billion pairs of distinct n-grams.
    """
    if len(tokens) < n:
        return np.zeros(0, np.uint64)
    powers = _BASE ** np.arange(n - 1, -1, -1, dtype=np.uint64)
    h = (sliding_window_view(tokens.astype(np.uint64), n) * powers).sum(axis=1, dtype=np.uint64)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    return h


class NgramIndex:
    """Sorted n-gram hashes of a training set, each with its (sequence, position); see `build_index`."""

    def __init__(self, n: int, ids: list[str], seq_owner: np.ndarray, hashes: np.ndarray,
                 seq: np.ndarray, pos: np.ndarray) -> None:
        self.n, self.ids, self.seq_owner = n, ids, seq_owner
        self.hashes, self.seq, self.pos = hashes, seq, pos

    def __len__(self) -> int:
        return len(self.hashes)

    def matches(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Which query n-grams occur at all, and every (query position, training sequence, training
        position) pair of equal hashes, leaving out n-grams with more than `MAX_OCCURRENCES` occurrences."""
        lo = np.searchsorted(self.hashes, hashes, side="left")
        count = np.searchsorted(self.hashes, hashes, side="right") - lo
        found = count > 0
        count = np.where(count <= MAX_OCCURRENCES, count, 0)
        query_pos = np.repeat(np.arange(len(hashes)), count)
        rows = np.repeat(lo, count) + np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        return found, query_pos, self.seq[rows], self.pos[rows]


def build_index(scores: Sequence[Score], ids: Sequence[str] | None = None, n: int = 8) -> NgramIndex:
    """Index every n-gram of every token sequence of the training `scores` (see module docstring)."""
    ids = list(ids) if ids is not None else [str(i) for i in range(len(scores))]
    hashes, seqs, positions, owners = [], [], [], []
    for piece, score in enumerate(scores):
        for tokens in note_tokens(score):
            h = ngram_hashes(tokens, n)
            hashes.append(h)
            seqs.append(np.full(len(h), len(owners), np.int32))
            positions.append(np.arange(len(h), dtype=np.int32))
            owners.append(piece)
    if not hashes:
        hashes, seqs, positions = [np.zeros(0, np.uint64)], [np.zeros(0, np.int32)], [np.zeros(0, np.int32)]
    h, s, p = np.concatenate(hashes), np.concatenate(seqs), np.concatenate(positions)
    order = np.argsort(h, kind="stable")
    return NgramIndex(n, ids, np.asarray(owners, np.int32), h[order], s[order], p[order])


def _longest_run(query_pos: np.ndarray, seq: np.ndarray, pos: np.ndarray) -> tuple[int, int]:
    """Longest run of matches on one diagonal of one training sequence: (run length, sequence) or (0, -1)."""
    if len(query_pos) == 0:
        return 0, -1
    diagonal = pos.astype(np.int64) - query_pos
    order = np.lexsort((query_pos, diagonal, seq))
    q, d, s = query_pos[order], diagonal[order], seq[order]
    continues = np.zeros(len(q), bool)
    continues[1:] = (s[1:] == s[:-1]) & (d[1:] == d[:-1]) & (q[1:] == q[:-1] + 1)
    run_id = np.cumsum(~continues)
    lengths = np.bincount(run_id)
    best = int(np.argmax(lengths))
    return int(lengths[best]), int(s[np.flatnonzero(run_id == best)[0]])


def check_piece(index: NgramIndex, score: Score, piece: str = "",
                thresholds: Thresholds = Thresholds()) -> PieceMemorization:
    """Shares of the piece's n-grams found in the training set and in its closest piece, longest span,
    verdict."""
    total, best_span, best_seq = 0, 0, -1
    found, owned = [], []  # matched n-grams: their id in this piece, and (training piece, id) pairs
    for tokens in note_tokens(score):
        hashes = ngram_hashes(tokens, index.n)
        known, query_pos, seq, pos = index.matches(hashes)
        found.append(np.flatnonzero(known) + total)
        owned.append(index.seq_owner[seq].astype(np.int64) * (1 << 32) + query_pos + total)
        total += len(hashes)
        run, run_seq = _longest_run(query_pos, seq, pos)
        if run > 0 and run + index.n > best_span:
            best_span, best_seq = run + index.n, run_seq
    if not total:
        return PieceMemorization(piece, len(notes(score, pitched=True)["pitch"]), float("nan"), float("nan"),
                                 0, None, False)
    per_piece = np.unique(np.unique(np.concatenate(owned)) >> 32, return_counts=True)[1]
    fraction = len(np.unique(np.concatenate(found))) / total
    closest = per_piece.max() / total if len(per_piece) else 0.0
    nearest = index.ids[index.seq_owner[best_seq]] if best_seq >= 0 else None
    copied = closest >= thresholds.fraction or best_span >= thresholds.span_notes
    return PieceMemorization(piece, len(notes(score, pitched=True)["pitch"]), fraction, float(closest),
                             best_span, nearest, bool(copied))


def check_set(index: NgramIndex, scores: Sequence[Score], ids: Sequence[str] | None = None,
              thresholds: Thresholds = Thresholds()) -> list[PieceMemorization]:
    """`check_piece` for every generated piece."""
    ids = list(ids) if ids is not None else [str(i) for i in range(len(scores))]
    return [check_piece(index, score, piece, thresholds) for piece, score in zip(ids, scores, strict=True)]


def summarize(results: Sequence[PieceMemorization]) -> dict:
    """Set-level numbers: pieces flagged, their share, mean fractions found, longest span of the set."""
    found = [r.fraction_found for r in results if not np.isnan(r.fraction_found)]
    closest = [r.fraction_closest for r in results if not np.isnan(r.fraction_closest)]
    return {
        "n_pieces": len(results),
        "copies": sum(r.copied for r in results),
        "copy_rate": (sum(r.copied for r in results) / len(results)) if results else None,
        "mean_fraction_found": float(np.mean(found)) if found else None,
        "mean_fraction_closest": float(np.mean(closest)) if closest else None,
        "longest_span_notes": max((r.longest_span_notes for r in results), default=0),
    }
