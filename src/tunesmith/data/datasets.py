"""Torch datasets over encoded pieces: windows of token sequences or of frame arrays.

Both hold a list of encoded pieces and a flat index of (piece, offset) windows, built once; an item
is one window. Windows cover each piece with the configured stride; the last window of a piece is
aligned to its end so no tail is dropped; pieces shorter than a window are padded.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from tunesmith.data.end_windows import end_weights, with_end_windows


def window_offsets(length: int, window: int, stride: int) -> list[int]:
    """Start offsets of windows of `window` steps over a sequence of `length` steps."""
    if length <= window:
        return [0]
    offsets = list(range(0, length - window + 1, stride))
    if offsets[-1] != length - window:
        offsets.append(length - window)
    return offsets


class TokenWindows(Dataset):
    """Items: {"tokens": int64 (window + 1,)}: inputs are [:-1], next-token targets [1:].

    Each piece is [bos] + tokens + [eos]; short pieces are right-padded with `pad_id`.
    `end_share` > 0 adds windows that hold a piece's end until they are that share of the items
    (`data/end_windows.py`; recipe key `data.end_windows`); 0: none added, the plain index.
    `end_weight` != 1 (with `is_bar`, (vocab,) bool, the bar tokens): items also hold "weights" float32
    (window,), the loss weight of each next-token target (tokens[1:]): `end_weight` on the tokens of a
    piece's last `end_bars` bars and its end token, 1 elsewhere (`end_windows.end_weights`); 1: items are
    tokens only, as without it.
    """

    def __init__(self, pieces: list[np.ndarray], window: int, stride: int, bos: int, eos: int, pad: int,
                 end_share: float = 0.0, end_weight: float = 1.0, is_bar: np.ndarray | None = None,
                 end_bars: int = 1):
        self.window, self.pad = window + 1, pad
        self.pieces = [np.concatenate([[bos], p, [eos]]).astype(np.int64) for p in pieces]
        self.weights = None
        if end_weight != 1.0:
            if is_bar is None:
                raise ValueError("end_weight needs is_bar, the vocabulary's bar tokens")
            self.weights = [end_weights(p, is_bar, end_bars, end_weight) for p in self.pieces]
        self.index = [(i, o) for i, p in enumerate(self.pieces) for o in window_offsets(len(p), self.window, stride)]
        if end_share > 0:
            self.index = with_end_windows(self.index, [len(p) for p in self.pieces], self.window, end_share)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        piece, offset = self.index[item]
        item = token_window(self.pieces[piece], offset, self.window, self.pad)
        if self.weights is not None:  # weights of the targets tokens[1:]; padding's weight is never used
            w = self.weights[piece][offset + 1 : offset + self.window]
            item["weights"] = torch.from_numpy(np.pad(w, (0, self.window - 1 - len(w)), constant_values=1.0))
        return item

    def n_tokens(self) -> int:
        """Real (non-padding) tokens over all pieces, each counted once."""
        return int(sum(len(p) for p in self.pieces))


class FrameWindows(Dataset):
    """Items: {"frames": float32 (window, *frame_shape), "mask": bool (window,)}: windows along the
    time axis of each encoded piece, which comes first in the item; short pieces are zero-padded and
    their padding is False in the mask. Windows in which nothing sounds are left out: they teach a model
    nothing but silence (multitrack songs and long rests have many).

    `time_axis` is where time lies in the encoded arrays: 0 for piano rolls ((steps, 88, 2), (steps,
    88)) and bars; 1 for multitrack rolls ((5 groups, steps, 128) -> items (window, 5, 128)).
    """

    def __init__(self, pieces: list[np.ndarray], window: int, stride: int, time_axis: int = 0):
        self.window = window
        self.pieces = [np.moveaxis(p, time_axis, 0) for p in pieces]  # views, no copy
        self.index = [(i, o) for i, p in enumerate(self.pieces) for o in window_offsets(len(p), window, stride)
                      if p[o : o + window].any()]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        piece, offset = self.index[item]
        return frame_window(self.pieces[piece], offset, self.window)


def token_window(tokens: np.ndarray, offset: int, window: int, pad: int) -> dict[str, torch.Tensor]:
    """{"tokens": int64 (window,)}: tokens[offset : offset + window], right-padded with `pad`."""
    chunk = tokens[offset : offset + window]
    if len(chunk) < window:
        chunk = np.concatenate([chunk, np.full(window - len(chunk), pad, np.int64)])
    return {"tokens": torch.from_numpy(chunk)}


def frame_window(frames: np.ndarray, offset: int, window: int) -> dict[str, torch.Tensor]:
    """{"frames": float32 (window, ...), "mask": bool (window,)} from time-first `frames`; zero padding
    past the piece's end is False in the mask."""
    chunk = np.asarray(frames[offset : offset + window], dtype=np.float32)
    mask = np.ones(window, dtype=bool)
    if len(chunk) < window:
        mask[len(chunk) :] = False
        pad = np.zeros((window - len(chunk), *chunk.shape[1:]), np.float32)
        chunk = np.concatenate([chunk, pad])
    return {"frames": torch.from_numpy(chunk), "mask": torch.from_numpy(mask)}
