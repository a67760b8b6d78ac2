"""Piano rolls in and out of the band chain (`models/band.py`): which groups sound in each window, a primer
padded to whole bars, and onset/sustain planes turned into velocity rolls. Rolls are (5, T, 128): the
instrument groups of `representations/multitrack.py`, 16th-note steps, MIDI pitches."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from tunesmith.core.errors import UserError
from tunesmith.data.piece_history import window_sounded
from tunesmith.models.band_decoding import VELOCITY
from tunesmith.models.window_ae import DRUMS, N_GROUPS


def window_sounding(roll: np.ndarray, window: int) -> Tensor:
    """(n_windows, 5) bool: which groups sound in each window of a (5, T, 128) roll, windows aligned on its end
    (the first one left-padded with silence, as `BandModel.encode_window` pads)."""
    pad = -roll.shape[1] % window
    padded = np.pad(np.asarray(roll), ((0, 0), (pad, 0), (0, 0)))
    return torch.from_numpy(window_sounded(padded.transpose(1, 0, 2), window))  # the training pairs' rule


def primer_roll(context: np.ndarray | None, bar: int) -> np.ndarray:
    """A multitrack primer roll (5, T, 128), or an empty one, padded with silence to whole bars."""
    if context is None:
        return np.zeros((N_GROUPS, 0, 128), np.uint8)
    context = np.asarray(context)
    if context.ndim != 3 or context.shape[0] != N_GROUPS:
        raise UserError(f"a band model continues a multitrack roll (5, steps, 128), got {context.shape}")
    steps = -(-context.shape[1] // bar) * bar
    out = np.zeros((N_GROUPS, steps, context.shape[2]), np.uint8)
    out[:, : context.shape[1]] = context
    return out


def velocity_rolls(onset: np.ndarray, sustain: np.ndarray, velocities: np.ndarray | None = None) -> np.ndarray:
    """(n, 5, T, 128) onset and sustain bools -> uint8 velocity rolls: a note starts at an onset and
    lasts while sustain holds (drums: one step), at `velocities` (5, T, 128) of its onset step (default
    VELOCITY everywhere). A note that starts right where the same pitch sounded at the same velocity is
    moved one velocity step, so the representation's rule (a note ends where the velocity changes) keeps
    the two apart."""
    n, groups, steps, pitches = onset.shape
    if velocities is None:
        velocities = np.full((groups, steps, pitches), VELOCITY, np.float32)
    table = np.clip(np.rint(velocities), 1, 127).astype(np.int16)
    roll = np.zeros(onset.shape, np.uint8)
    active = np.zeros((n, groups, pitches), bool)
    held = np.zeros((n, groups, pitches), np.int16)  # velocity of the sounding note, 0 where silent
    melodic = np.arange(groups) != DRUMS
    for t in range(steps):
        on = onset[:, :, t]
        fresh = np.broadcast_to(table[:, t], on.shape)
        clash = on & active & (fresh == held)
        fresh = np.where(clash, np.where(fresh < 127, fresh + 1, fresh - 1), fresh)
        active = on | (sustain[:, :, t] & active & ~on & melodic[None, :, None])
        held = np.where(on, fresh, np.where(active, held, 0))
        roll[:, :, t] = held
    return roll
