"""Best-of-m endings for countdown generation: a decoding option, not learned form (issue 11, item 2).

A countdown model generating exactly N bars (`generation/countdown.py`, `--ending bars`) may draw its
end token in the last bar after any complete note, often mid-phrase. With `candidates = m > 1` each
requested piece is drawn m times (independent rows of one batch) and the row kept is the one that ends
best, scored in two parts (`ending_scores`):

1. the cadence tests of `evaluation.form` on the drawn piece's own notes (as decoded and cut to its
   bars): tonic in the bass, a tonic chord, held at least a beat, each worth 1 (0..3); the key is the
   one estimated from the drawn piece, so a piece that drifted is judged in the key it drifted to;
2. to break ties, the model's own belief that the piece ends there: its P(EOS) (softmax of the raw
   logits, before temperature or masks) at the step where the row drew its end token, -1 for a row that
   drew none (cut at the bar line), mapped into [0, 0.5) so it never outweighs one test.

Ties keep the first row. The cadence part selects on the very tests `benchmarks/endings.py` counts, so
its cadence share measures what the option delivers, not what the model learned; read it beside the
plain draws' share and the pieces' overall statistics (`benchmarks/endings_quality.py`).
Costs m times the sampling of plain generation.
"""

from __future__ import annotations

import numpy as np
from symusic import Score

from tunesmith.evaluation.form import ending_of
from tunesmith.generation.endings import EosObserver

MAX_CANDIDATES = 64


def candidates_of(request) -> int:
    """The request's `candidates` (1 when unset); ValueError unless an int in [1, MAX_CANDIDATES]."""
    m = getattr(request, "candidates", 1)
    if isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= MAX_CANDIDATES:
        raise ValueError(f"candidates must be a whole number from 1 to {MAX_CANDIDATES}, not {m!r}")
    return m


class EosRecorder(EosObserver):
    """Keeps every step's P(EOS) per row of a batch: `p` is a list of (batch,) float arrays, entry t the
    probability before the t-th drawn token."""

    def __init__(self, inner, eos_id: int, batch: int) -> None:
        super().__init__(inner, eos_id, batch)
        self.p: list[np.ndarray] = []

    def seen(self, p: np.ndarray) -> None:
        self.p.append(p)

    def end_scores(self, rows: list[list[int]]) -> np.ndarray:
        """(batch,) P(EOS) where each row drew its end token; -1 for a row that drew none."""
        scores = np.full(len(rows), -1.0)
        for r, row in enumerate(rows):
            if self.eos_id in row:
                scores[r] = self.p[row.index(self.eos_id)][r]
        return scores


def ending_scores(pieces: list[Score], p_eos: np.ndarray) -> np.ndarray:
    """(rows,) how well each drawn piece ends (module docstring): cadence tests passed (0..3) plus
    (P(EOS) + 1) / 4, `p_eos` (rows,) in [-1, 1] (`EosRecorder.end_scores`)."""
    tests = np.array([0 if e is None else e.tonic_bass + e.tonic_chord + e.held
                      for e in (ending_of(piece) for piece in pieces)], float)
    return tests + (np.clip(np.asarray(p_eos, float), -1.0, 1.0) + 1.0) / 4.0 * (1 - 1e-9)


def best_rows(scores: np.ndarray, m: int) -> list[int]:
    """Index of the best-scoring row of each group of `m` consecutive rows (the first on ties)."""
    groups = np.asarray(scores, float).reshape(-1, m)
    return (np.argmax(groups, axis=1) + m * np.arange(len(groups))).tolist()


class Kept:
    """What `TokenStream.record` reads of a constraint, for the kept rows only."""

    def __init__(self, recorder: EosRecorder, keep: list[int]) -> None:
        self.inner, self.enforce = recorder.inner, recorder.enforce
        self.invalid = np.asarray(recorder.invalid)[keep]
