"""End-aligned training windows (issue 11, item 2: models that learn form).

Cut into windows of W tokens at stride W/2, a piece of ~600 tokens gives ~5 windows of which one holds
its end token, and the bar countdown tokens of its last bars (`representations/countdown.py`) sit in a
minority of windows: the network sees few piece ends per step and learns slowly that the end comes
after `Bar_0`'s bar and never after a `Bar_k`, k > 0. `with_end_windows` adds windows that hold a
piece's end to the (piece, offset) index of `datasets.TokenWindows` until they make up `share` of it.

The added windows start at `len - W + j * step` for j = 0 .. `variants` - 1 (step = W / (2 x variants)),
so the end falls at different places of a window (the tail past the end is padding, which the loss
skips) and one piece's ending is not repeated as the same window only. Items stay pure functions of
their index (`training/loader.py`).

Off by default. On with the recipe key `data.end_windows: SHARE` (0 <= SHARE < 1), for the training
windows only: validation stays the plain striding, so its loss compares with runs without it.
"""

from __future__ import annotations

import numpy as np


def holds_end(length: int, offset: int, window: int) -> bool:
    """Whether the window [offset, offset + window) of a piece of `length` tokens holds its last token."""
    return offset + window >= length


def end_offsets(length: int, window: int, variants: int = 4) -> list[int]:
    """Offsets of up to `variants` windows that hold the end of a piece of `length` tokens, each keeping
    at least half a window of the piece; [0] for a piece no longer than the window."""
    if length <= window:
        return [0]
    step = max(1, window // (2 * variants))
    return [length - window + j * step for j in range(variants) if j * step <= window // 2]


def with_end_windows(index: list[tuple[int, int]], lengths: list[int], window: int, share: float,
                     variants: int = 4) -> list[tuple[int, int]]:
    """`index` plus added (piece, offset) windows that hold a piece's end, so that a `share` of the
    result (rounded down) holds one. Added windows go round the pieces in order, each piece's
    `end_offsets` in turn. `lengths[i]`: tokens of piece i; `window`: tokens per item."""
    if not 0 <= share < 1:
        raise ValueError(f"share must be in [0, 1), not {share}")
    have = sum(holds_end(lengths[p], o, window) for p, o in index)
    extra = max(0, int((share * len(index) - have) / (1 - share)))
    if not extra or not lengths:
        return list(index)
    offsets = [end_offsets(n, window, variants) for n in lengths]
    added = [(i % len(lengths), offsets[i % len(lengths)][(i // len(lengths)) % len(offsets[i % len(lengths)])])
             for i in range(extra)]
    return list(index) + added


def end_weights(piece: np.ndarray, is_bar: np.ndarray, bars: int, weight: float) -> np.ndarray:
    """Per-token loss weights (n,) float32 for a framed piece [bos, tokens..., eos] (n,) int64: `weight`
    from its `bars`-th last bar token (the bar line that opens its last `bars` bars) to its end
    inclusive, 1 elsewhere; all 1 when it has no bar token. `is_bar` (vocab,) bool marks bar tokens
    (`representations.countdown.Countdown.is_bar`). The tokens of a piece's close then weigh `weight`
    times the others in the loss (`models.layers.masked_cross_entropy`), so a model spends more of its
    capacity on how pieces end (recipe key `data.end_weight`)."""
    out = np.ones(len(piece), np.float32)
    where = np.flatnonzero(is_bar[np.asarray(piece, np.int64)])
    if len(where) and bars > 0:
        out[where[-min(bars, len(where))]:] = weight
    return out
