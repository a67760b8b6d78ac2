"""Whole pieces as a band model's window latents, for measuring context predictors (`BandConfig.context`) outside
the training loop (which trains them itself: its window pairs carry the piece so far, `data/piece_history.py`).

With the autoencoder frozen (`train_codec: false`) a piece's latents never change, so they are encoded once
here: every whole 2-bar window of a piece (a trailing partial window is dropped, as the loop's pairs on the
window grid), its five latents and which groups sound in it. `context_pairs` then gives every (window t, window
t+1) pair of every piece with the summary of the piece up to t (`latent_predictor.context_features`). Unlike the
loop's pairs, window t's planes are cut from the whole piece's, so a note held into it has no onset at its start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from tunesmith.models.latent_predictor import context_features
from tunesmith.models.window_ae import roll_planes


@dataclass
class PieceLatents:
    """One piece: latents (n_windows, 5, D) float32 and sounded (n_windows, 5) bool, oldest window first."""

    latents: Tensor
    sounded: Tensor


@torch.no_grad()
def encode_pieces(model, rolls: list[np.ndarray], batch: int = 128) -> list[PieceLatents]:
    """Each (5, T, 128) velocity roll -> its whole windows' latents by `model.codec` (eval mode, no noise).

    The onset and sustain planes are cut from the whole piece's planes, so a note held across a window
    boundary has no onset at the second window's start (as in the training loop's window pairs)."""
    model.eval()
    w, out = model.config.window, []
    for roll in rolls:
        n = np.asarray(roll).shape[1] // w
        if n == 0:
            continue
        frames = torch.from_numpy(np.ascontiguousarray(np.asarray(roll)[:, : n * w])).permute(1, 0, 2)[None]
        planes = roll_planes(frames.float())[0]  # (5, 2, n w, 128)
        windows = planes.reshape(*planes.shape[:2], n, w, planes.shape[-1]).permute(2, 0, 1, 3, 4)
        latents = torch.cat([model.codec.encode_groups(windows[i : i + batch]) for i in range(0, n, batch)])
        out.append(PieceLatents(latents.float(), windows[:, :, 1].flatten(2).any(-1)))
    return out


def context_pairs(pieces: list[PieceLatents], context: int) -> dict[str, Tensor]:
    """Every consecutive window pair of every piece: {"z_t": (N, 5, D), "z_next": (N, 5, D),
    "history": (N, n_context) the piece up to t (`context_features`), "plays": (N, 5) bool window t+1}."""
    z_t, z_next, history, plays = [], [], [], []
    for piece in pieces:
        n = len(piece.latents)
        if n < 2:
            continue
        z_t.append(piece.latents[:-1])
        z_next.append(piece.latents[1:])
        plays.append(piece.sounded[1:])
        history += [context_features(piece.sounded[None, : t + 1], context) for t in range(n - 1)]
    return {"z_t": torch.cat(z_t), "z_next": torch.cat(z_next), "history": torch.cat(history),
            "plays": torch.cat(plays)}
