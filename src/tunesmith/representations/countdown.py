"""Bar countdown tokens for `events` REMI (issue 11, item 2: models that learn form).

A token model trained on windows of a piece does not know how far the piece is from its end, yet it is
sampled for a requested number of bars, so it rarely plans a cadence. With `countdown: K` (K >= 1) the
`events` representation writes each REMI bar line as `Bar_k`, k = bars left after this one (the last bar
of a piece starts with `Bar_0`), and keeps miditok's own `Bar_None` for bars K or more from the end
("far"). `k` is counted in REMI bars (4/4, as miditok writes them without time-signature tokens) from
the piece's last `Bar` token, i.e. the bar of its last onset. The K tokens are appended after miditok's
vocabulary (ids `V .. V + K - 1`, V = miditok's size), so every other id keeps its meaning and an old
checkpoint can be extended (`Bar_k` rows initialised from the `Bar_None` row).

Decoding maps every `Bar_k` back to `Bar_None`: a countdown model decodes to the same scores as one
without. At generation the requested length fixes which `Bar_k` stands at each bar line (the grammar's
countdown window, `representations/grammar.py`; `generation/countdown.py`).
"""

from __future__ import annotations

import numpy as np

FAR = "Bar_None"


def countdown_tokens(k: int) -> list[str]:
    """The tokens appended to miditok's vocabulary: `Bar_0 .. Bar_{k-1}`."""
    return [f"Bar_{i}" for i in range(k)]


class Countdown:
    """Relabels the bar tokens of an id array (n,) int64 over a vocabulary that holds `countdown_tokens(k)`."""

    def __init__(self, vocab: list[str], k: int) -> None:
        self.k = k
        self.far_id = vocab.index(FAR)
        self.first_id = vocab.index("Bar_0")  # Bar_j has id first_id + j
        self.is_bar = np.zeros(len(vocab), bool)
        self.is_bar[[self.far_id, *range(self.first_id, self.first_id + k)]] = True

    def bar_id(self, bars_left: int) -> int:
        """The token of a bar line with `bars_left` bars after it (far when >= k)."""
        return self.first_id + bars_left if 0 <= bars_left < self.k else self.far_id

    def n_bars(self, ids: np.ndarray) -> int:
        """How many bar tokens `ids` holds (any label)."""
        return int(self.is_bar[np.asarray(ids, np.int64)].sum())

    def label(self, ids: np.ndarray, total_bars: int | None = None) -> np.ndarray:
        """`ids` with its i-th bar token (0-based) replaced by the one of `total_bars - 1 - i` bars left;
        `total_bars` defaults to the bar tokens in `ids` (a whole piece: its last bar gets `Bar_0`)."""
        ids = np.array(ids, np.int64)
        where = np.flatnonzero(self.is_bar[ids])
        total = len(where) if total_bars is None else total_bars
        left = total - 1 - np.arange(len(where))
        ids[where] = np.where((left >= 0) & (left < self.k), self.first_id + left, self.far_id)
        return ids

    def far(self, ids: np.ndarray) -> np.ndarray:
        """`ids` with every bar token `Bar_None` (bars at no known distance from the end; also what
        miditok's decoder reads)."""
        ids = np.array(ids, np.int64)
        ids[self.is_bar[ids]] = self.far_id
        return ids
