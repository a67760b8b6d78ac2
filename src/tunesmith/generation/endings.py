"""`--ending model`: a token piece ends where its model believes a piece ends, at least `bars` bars in.

With the default `--ending bars`, a piece is cut at the bar line `bars` bars after the primer, wherever
the music is (mid-phrase, usually). Token models are trained on [BOS] + piece + [EOS], so they have
learned where pieces end: `lstm-bach` puts 36x more end-token probability after notes that end on a bar
line than after other notes, and the true end of a held-out chorale ranks above 99 % of its positions
(`benchmarks/endings.py`). Drawing the end token at random would waste that (it is rarely drawn within a
few bars); instead, with `--ending model`:

- the piece is sampled as usual (the end token never drawn) to `bars + extra_bars(bars)` bars;
- after every complete note from bar `bars` on (the grammar's `at_boundary`; every token for grammars
  without notes), `EndingWatch` records the model's P(EOS | piece so far);
- the piece ends where that probability is highest, and is cut at the first bar line at or after its
  last note's end, so the final chord is held to the bar line.

A model with bar countdown tokens (`events` with `countdown`) does not need the watch: it reads how many
bars are left at every bar line and ends the piece itself (`generation/countdown.py`); there `--ending
model` lets it choose when to start its countdown, between `bars` and `bars + extra_bars(bars)` bars.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

ENDINGS = ("bars", "model")


def extra_bars(bars: int) -> int:
    """Bars a piece may run past the requested length while its model approaches a cadence."""
    return max(4, bars // 2)


class EosObserver:
    """Wraps a batch's grammar constraint (or none) with `GrammarConstraint`'s interface (`enforce`,
    `allowed`, `update`, `invalid`), plus `observe(logits)`, which the sampler calls with the raw
    next-token logits before anything is masked: each row's P(EOS) then goes to `seen(p)`, which a
    subclass defines. `step` counts the tokens drawn so far."""

    def __init__(self, inner, eos_id: int, batch: int) -> None:
        self.inner, self.eos_id, self.batch = inner, eos_id, batch
        self.enforce = inner is not None and inner.enforce
        self.step = 0

    @property
    def invalid(self) -> np.ndarray:
        return self.inner.invalid if self.inner is not None else np.zeros(self.batch, np.int64)

    def allowed(self, device: torch.device | str = "cpu") -> Tensor:
        return self.inner.allowed(device)

    def observe(self, logits: Tensor) -> None:
        """logits (batch, vocab), raw."""
        self.seen(torch.softmax(logits.float(), -1)[:, self.eos_id].cpu().numpy())

    def seen(self, p: np.ndarray) -> None:
        raise NotImplementedError

    def update(self, ids: Tensor) -> None:
        if self.inner is not None:
            self.inner.update(ids)
        self.step += 1


class EndingWatch(EosObserver):
    """Records where each row could end: the highest P(EOS) seen at a boundary once the row is `ready`
    ((batch,), set by the stream when a row has its minimum length)."""

    def __init__(self, inner, eos_id: int, batch: int) -> None:
        super().__init__(inner, eos_id, batch)
        self.ready = np.zeros(batch, bool)
        self.best_p = np.full(batch, -1.0)  # the highest P(EOS) seen at a boundary, per row
        self.best_step = np.full(batch, -1)  # tokens drawn when it was seen (-1: none yet)

    def seen(self, p: np.ndarray) -> None:
        """P(EOS) now, kept where a row is ready, at a boundary, and higher than before."""
        boundary = np.ones(len(p), bool) if self.inner is None else self.inner.grammar.at_boundary(self.inner.state)
        better = self.ready & boundary & (p > self.best_p)
        self.best_p[better], self.best_step[better] = p[better], self.step

    def ends(self, rows: list[list[int]]) -> list[list[int]]:
        """Each row (tokens drawn) cut where its model most expected the end; whole where it saw no boundary."""
        return [row[:step] if step >= 0 else row for row, step in zip(rows, self.best_step.tolist(), strict=True)]
