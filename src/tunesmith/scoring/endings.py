"""Where a token model believes a piece ends: the end-token probability after every prefix of a piece.

A model that has learned form puts its end-token mass where real pieces end (after the final cadence,
at a bar line) and almost none mid-phrase. `eos_probabilities` runs a token family's stepper over
[BOS] + a piece's tokens (teacher forcing, the model's own incremental state or KV cache, so a piece
longer than the context is handled as in generation) and returns P(EOS) after each prefix.
`ending_profile` summarises that over pieces: mean P(EOS) at the true end, after notes that end on a bar
line, after other notes, and the percentile of the true end among all positions of its piece.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from tunesmith.models.checkpoint import LoadedModel


@torch.no_grad()
def eos_probabilities(loaded: LoadedModel, ids: np.ndarray) -> np.ndarray:
    """P(EOS | BOS, ids[:i]) for i = 1..len(ids): (len(ids),) float64; entry i-1 is the probability
    that the piece ends right after token i-1."""
    rep, model = loaded.representation, loaded.model
    stepper = model.stepper()
    state = stepper.initial_state(1, torch.device("cpu"), None)
    out, state = stepper(torch.tensor([rep.bos_id]), state)
    probabilities = []
    for token in np.asarray(ids, dtype=np.int64):
        out, state = stepper(torch.tensor([int(token)]), state)
        probabilities.append(float(torch.softmax(out.double(), -1)[0, rep.eos_id]))
    return np.asarray(probabilities)


def ending_profile(loaded: LoadedModel, pieces: Sequence[np.ndarray],
                   at_bar_line: Callable[[np.ndarray], np.ndarray],
                   bars_left: Callable[[np.ndarray], np.ndarray] | None = None, far: int = 8) -> dict:
    """Summaries over `pieces` (token arrays). `at_bar_line(ids)` -> (len(ids),) int8: 1 after a token that
    completes a note ending on a bar line, 0 after one completing any other note, -1 elsewhere.

    With `bars_left(ids)` -> (len(ids),) int (at each bar line, after its last token: the bars still to
    come, 0 after the piece's last token; -1 elsewhere), also `p_eos_by_bars_left`: mean P(EOS) at the
    true end (entry 0), at bar lines with 1, ..., far - 1 bars to come, and last `far` or more."""
    at_end, on_bar, off_bar, percentile = [], [], [], []
    by_left: list[list[float]] = [[] for _ in range(far + 1)]
    for ids in pieces:
        p = eos_probabilities(loaded, ids)
        where = at_bar_line(ids)
        at_end.append(p[-1])
        on_bar += p[:-1][where[:-1] == 1].tolist()
        off_bar += p[:-1][where[:-1] == 0].tolist()
        percentile.append(float(np.mean(p <= p[-1])))
        if bars_left is not None:
            left = bars_left(ids)
            for d, value in zip(left[left >= 0].tolist(), p[left >= 0].tolist(), strict=True):
                by_left[min(d, far)].append(value)
    profile = {"pieces": len(pieces), "p_eos_at_true_end": float(np.mean(at_end)),
               "p_eos_note_ends_on_bar_line": float(np.mean(on_bar)) if on_bar else float("nan"),
               "p_eos_other_note_ends": float(np.mean(off_bar)) if off_bar else float("nan"),
               "true_end_percentile": float(np.mean(percentile))}
    if bars_left is not None:
        profile["p_eos_by_bars_left"] = [float(np.mean(v)) if v else float("nan") for v in by_left]
    return profile
