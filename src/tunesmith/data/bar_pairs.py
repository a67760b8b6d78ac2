"""Data kind "bars": (previous bar, bar, chord) examples for bar-by-bar models (MidiNet).

A piece is encoded by the `bars` representation as `bars` (n_bars, T, 128) uint8 one-hot melody bars
and `chords` (n_bars, 13) chord vectors. Every bar with at least one note is an example; its
condition is the bar before it in the same piece (all zeros for a piece's first bar, as the seed).
Silent bars are not targets (a model has nothing to learn from "silence follows X"), but they stay
conditions. `phrases(n)` cuts the pieces into non-overlapping phrases of n bars (the seed's 8-bar
songs), for evaluating whole generated phrases against real ones.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset


class BarPairs(Dataset):
    """Items: {"bar": float32 (T, 128), "prev": float32 (T, 128), "chord": float32 (13,)}."""

    def __init__(self, pieces: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.pieces = pieces
        self.index = [(p, i) for p, (bars, _) in enumerate(pieces) for i in range(len(bars)) if bars[i].any()]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        piece, i = self.index[item]
        bars, chords = self.pieces[piece]
        prev = bars[i - 1] if i > 0 else np.zeros_like(bars[i])
        return {"bar": torch.from_numpy(bars[i].astype(np.float32)),
                "prev": torch.from_numpy(prev.astype(np.float32)),
                "chord": torch.from_numpy(np.asarray(chords[i], np.float32))}

    def phrases(self, n_bars: int = 8) -> dict[str, np.ndarray]:
        """Non-overlapping phrases of `n_bars` bars from each piece's start: {"bars": (n, n_bars, T, 128)
        uint8, "chords": (n, n_bars, 13) float32, "prev": (n, T, 128) uint8 the bar before each phrase
        (zeros at a piece's start)}."""
        bars, chords, prev = [], [], []
        for piece, piece_chords in self.pieces:
            for s in range(0, len(piece) - n_bars + 1, n_bars):
                bars.append(piece[s : s + n_bars])
                chords.append(piece_chords[s : s + n_bars])
                prev.append(piece[s - 1] if s > 0 else np.zeros_like(piece[0]))
        if not bars:
            raise ValueError(f"no piece has {n_bars} bars")
        return {"bars": np.stack(bars), "chords": np.stack(chords).astype(np.float32), "prev": np.stack(prev)}
