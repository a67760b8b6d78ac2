"""Window pairs that carry the piece so far: the training items of a model whose predictors read the piece's
history (a band model with `context`, `models/band.py`).

The frames data of the training loop are pairs of consecutive windows, which tell a model nothing about what
came before them. A family whose training items need that says so (`MusicModel.piece_history`, from its config,
before any data is loaded) with a `PieceHistory`: the length of its windows and the summary it reads. Each piece
is then cut on its own window grid (window t starts at step t x window; a trailing partial window is dropped, as
`models/band_latents.encode_pieces` does) and each pair (t, t+1) carries `summary` of which groups sounded in
windows 0 .. t. The summary is the family's own function (for band `latent_predictor.context_features`, the one
generation uses), so training and generation read the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from tunesmith.core.errors import UserError
from tunesmith.data.config import DataConfig
from tunesmith.data.datasets import frame_window


@dataclass(frozen=True)
class PieceHistory:
    """What a family's items need of the piece so far: windows of `window` steps, and `summary`: sounded (1, t + 1,
    groups) bool, which groups sound anywhere in each window 0 .. t -> (1, n) float32, what the model reads."""

    window: int
    summary: Callable[[Tensor], Tensor]


def check_history_data(cfg: DataConfig, history: PieceHistory) -> None:
    """UserError (one sentence, before any data is loaded) for a data config that cannot give `history`'s items:
    pairs of whole windows on the piece's grid, from pieces held in memory."""
    if cfg.streaming:
        raise UserError("data.streaming reads windows without the piece before them, which this model's predictors "
                        "read (model config context): set data.streaming to false")
    if cfg.window != 2 * history.window:
        raise UserError(f"data.window is {cfg.window} steps; this model trains on pairs of its {history.window}-step "
                        f"windows with the piece so far: set it to {2 * history.window}")
    if cfg.stride not in (None, history.window):
        raise UserError(f"data.stride is {cfg.stride}; pairs that carry the piece so far lie on the piece's "
                        f"{history.window}-step window grid: set it to {history.window} or leave it out")


def window_sounded(frames: np.ndarray, window: int) -> np.ndarray:
    """Time-first frames (T, groups, ...) -> (T // window, groups) bool: whether anything in each group is nonzero
    in each whole window, windows from the start (`band_rolls.window_sounding` aligns them on the end)."""
    n = len(frames) // window
    whole = np.asarray(frames[: n * window])
    return whole.reshape(n, window, whole.shape[1], -1).any(axis=(1, 3))


class HistoryPairs(Dataset):
    """Items: {"frames": float32 (2 x window, groups, 128), "mask": bool (2 x window,) all True, "history": float32
    (n,)}: windows t and t+1 of a piece's grid and `history.summary` of the piece up to window t. Pairs in which
    nothing sounds are left out (as `FrameWindows`: they teach nothing but silence); pieces shorter than two
    windows give none. `time_axis`: where time lies in the encoded arrays (multitrack: 1)."""

    def __init__(self, pieces: list[np.ndarray], history: PieceHistory, time_axis: int = 0):
        self.history, w = history, history.window
        self.pieces = [np.moveaxis(p, time_axis, 0) for p in pieces]  # views, no copy
        self.sounded = [torch.from_numpy(window_sounded(p, w)) for p in self.pieces]
        self.index = [(i, t) for i, s in enumerate(self.sounded) for t in range(len(s) - 1) if s[t : t + 2].any()]
        if pieces and not self.index:
            raise UserError(f"none of the {len(pieces)} pieces of a split holds two whole {w}-step windows with "
                            "sound, the pairs this model trains on")

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict[str, Tensor]:
        piece, t = self.index[item]
        w = self.history.window
        pair = frame_window(self.pieces[piece], t * w, 2 * w)
        pair["history"] = self.history.summary(self.sounded[piece][None, : t + 1])[0].float()
        return pair
