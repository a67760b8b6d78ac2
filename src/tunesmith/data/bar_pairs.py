"""Data kind "bars": (previous bar, bar, chord) examples for bar-by-bar models (MidiNet).

A piece is encoded by the `bars` representation as `bars` (n_bars, T, 128) uint8 one-hot melody bars
and `chords` (n_bars, 13) chord vectors. Every bar with at least one note is an example; its
condition is the bar before it in the same piece (all zeros for a piece's first bar, as the seed).
Silent bars are not targets (a model has nothing to learn from "silence follows X"), but they stay
conditions. `phrases(n)` cuts the pieces into non-overlapping phrases of n bars (the seed's 8-bar
songs), for evaluating whole generated phrases against real ones.

Each item also carries its piece's `profile` (`piece_profile`): where the whole piece lives, in key and
register. A model conditioned on it (MidiNet's `profile` option) is told the key of the song it writes
a bar of, so bar after bar stays in one key and one register instead of drifting.

And its `history` (`history_features`): what the piece did in its last `HISTORY_BARS` bars and where
in an 8-bar phrase the bar falls. A model that sees only the bar before has a fixed point: a bar that
reproduces itself (MidiNet's `history` option gives it this longer view).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

PROFILE_DIM = 14  # 12 pitch-class shares + mean pitch + pitch spread
REGISTER_CENTRE = 60  # MIDI middle C: the profile's mean pitch is measured from it, in octaves
HISTORY_BARS = 4  # bars back that `history_features` summarises
PHRASE_BARS = 8  # the bar's position counts modulo this (Essen songs: 4- and 8-bar phrases)
HISTORY_DIM = 12 + 2 + 1 + PHRASE_BARS  # recent pitch classes, recent register, repeat flag, position


def piece_profile(bars: np.ndarray) -> np.ndarray:
    """(n_bars, T, 128) one-hot bars -> (14,) float32 profile of the whole piece.

    [:12]: share of the sounding steps on each pitch class (C..B, sums to 1); [12]: mean sounding
    pitch as (mean - 60) / 12, in octaves from middle C; [13]: the pitches' standard deviation / 12
    (octaves). All zeros for a piece without notes.
    """
    counts = np.asarray(bars).reshape(-1, bars.shape[-1]).sum(0).astype(np.float64)  # steps per pitch
    total, out = counts.sum(), np.zeros(PROFILE_DIM, np.float32)
    if total == 0:
        return out
    pitch = np.arange(len(counts))
    out[:12] = np.bincount(pitch % 12, weights=counts, minlength=12) / total
    mean = (pitch * counts).sum() / total
    out[12] = (mean - REGISTER_CENTRE) / 12
    out[13] = np.sqrt(((pitch - mean) ** 2 * counts).sum() / total) / 12
    return out


def transpose_profile(profile: np.ndarray, shift: int) -> np.ndarray:
    """The (..., 14) profile of the piece moved up `shift` semitones (pitch classes rotate, mean moves)."""
    out = np.array(profile, np.float32, copy=True)
    out[..., :12] = np.roll(out[..., :12], shift, axis=-1)
    out[..., 12] += shift / 12
    return out


def history_features(before: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """The history (23,) float32 of the bar that follows `before` (n, T, 128) one-hot bars, the piece's
    bars so far (n may be 0), in a piece with `profile` (14,) (`piece_profile`).

    [:12] share of the sounding steps of the last `HISTORY_BARS` bars on each pitch class (zeros if
    silent); [12] their mean pitch minus the piece's, in octaves; [13] their pitch spread, in octaves;
    [14] 1 when the last bar repeats the one before it exactly (and holds notes); [15:] one-hot of the
    bar's index n modulo `PHRASE_BARS`.
    """
    out = np.zeros(HISTORY_DIM, np.float32)
    recent = np.asarray(before[-HISTORY_BARS:]) if len(before) else np.zeros((0, 1, 1))
    recent_profile = piece_profile(recent) if len(recent) else out[:PROFILE_DIM]
    if recent_profile[:12].any():
        out[:12] = recent_profile[:12]
        out[12] = recent_profile[12] - profile[12]
        out[13] = recent_profile[13]
    if len(before) >= 2 and np.asarray(before[-1]).any() and np.array_equal(before[-1], before[-2]):
        out[14] = 1.0
    out[15 + len(before) % PHRASE_BARS] = 1.0
    return out


class BarPairs(Dataset):
    """Items: {"bar": float32 (T, 128), "prev": float32 (T, 128), "chord": float32 (13,),
    "profile": float32 (14,) the piece's `piece_profile`, "history": float32 (23,) the bar's
    `history_features`}."""

    def __init__(self, pieces: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.pieces = pieces
        self.index = [(p, i) for p, (bars, _) in enumerate(pieces) for i in range(len(bars)) if bars[i].any()]
        self.profiles = [piece_profile(bars) for bars, _ in pieces]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        piece, i = self.index[item]
        bars, chords = self.pieces[piece]
        prev = bars[i - 1] if i > 0 else np.zeros_like(bars[i])
        return {"bar": torch.from_numpy(bars[i].astype(np.float32)),
                "prev": torch.from_numpy(prev.astype(np.float32)),
                "chord": torch.from_numpy(np.asarray(chords[i], np.float32)),
                "profile": torch.from_numpy(self.profiles[piece]),
                "history": torch.from_numpy(history_features(bars[:i], self.profiles[piece]))}

    def phrases(self, n_bars: int = 8) -> dict[str, np.ndarray]:
        """Non-overlapping phrases of `n_bars` bars from each piece's start: {"bars": (n, n_bars, T, 128)
        uint8, "chords": (n, n_bars, 13) float32, "prev": (n, T, 128) uint8 the bar before each phrase
        (zeros at a piece's start), "profiles": (n, 14) float32 each phrase's piece profile}."""
        bars, chords, prev, profiles = [], [], [], []
        for (piece, piece_chords), profile in zip(self.pieces, self.profiles, strict=True):
            for s in range(0, len(piece) - n_bars + 1, n_bars):
                bars.append(piece[s : s + n_bars])
                chords.append(piece_chords[s : s + n_bars])
                prev.append(piece[s - 1] if s > 0 else np.zeros_like(piece[0]))
                profiles.append(profile)
        if not bars:
            raise ValueError(f"no piece has {n_bars} bars")
        return {"bars": np.stack(bars), "chords": np.stack(chords).astype(np.float32), "prev": np.stack(prev),
                "profiles": np.stack(profiles)}
