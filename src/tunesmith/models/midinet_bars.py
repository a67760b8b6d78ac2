"""MidiNet's bars as tensors: one-hot bars <-> one pitch per step, and the statistics its validation
compares (pitch-class histogram, rest rate, change rate). A bar is (T steps, 128 pitches); an all-zero
step is a rest."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F  # noqa: N812

from tunesmith.core.errors import UserError
from tunesmith.data.bar_pairs import transpose_profile

N_PITCHES = 128


def last_filled_bar(bars: Tensor) -> Tensor:
    """The last bar (T, 128) of `bars` (n, T, 128) that holds a note; UserError when none does."""
    filled = torch.nonzero(bars.flatten(1).any(1)).flatten()
    if not len(filled):
        raise UserError("the primer has no melody notes to continue")
    return bars[int(filled[-1])]


def bars_to_pitches(bars: Tensor) -> Tensor:
    """(B, T, 128) one-hot bars -> (B, T) int64 pitch per step, -1 for a rest (an all-zero row)."""
    return torch.where(bars.amax(-1) > 0, bars.argmax(-1), torch.full_like(bars.argmax(-1), -1))


def pitches_to_bars(pitches: Tensor) -> Tensor:
    """Inverse of `bars_to_pitches`: (B, T) pitches (-1 = rest) -> (B, T, 128) float one-hot."""
    onehot = F.one_hot((pitches.long() + 1).clamp(min=0), N_PITCHES + 1).float()
    return onehot[..., 1:]


def bar_statistics(bars: Tensor) -> dict[str, np.ndarray | float]:
    """Pitch-class histogram (12,), rest rate and change rate of a stack of bars (B, T, 128)."""
    pitches = bars_to_pitches(bars)
    counts = bars.sum(dim=(0, 1)).double().cpu().numpy()  # (128,) steps per pitch
    folded = np.bincount(np.arange(N_PITCHES) % 12, weights=counts, minlength=12)
    pch = folded / folded.sum() if folded.sum() > 0 else np.full(12, 1 / 12)
    changes = (pitches[:, 1:] != pitches[:, :-1]).float().mean()
    return {"pch": pch, "rest_rate": float((pitches < 0).float().mean()), "change_rate": float(changes)}


REGISTER_SPREAD = 2.5  # standard deviations from a piece's mean pitch that still count as its register


def out_of_key_mask(profile: Tensor) -> Tensor:
    """(B, 14) piece profiles -> (B, 128) float: 1 on the pitches off the piece's profile, i.e. whose
    pitch class it never uses or that lie over 2.5 standard deviations (and over a semitone) from its
    mean pitch (about 1 % of real notes do)."""
    pitch = torch.arange(N_PITCHES, device=profile.device)
    unused = (profile[:, :12] <= 0).float()[:, pitch % 12]
    mean = 60 + 12 * profile[:, 12:13]
    reach = (REGISTER_SPREAD * 12 * profile[:, 13:14]).clamp(min=1.0)
    return torch.maximum(unused, ((pitch[None] - mean).abs() > reach).float())


MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)  # pitch classes of a major scale from its root (natural minor: same sets)


def off_scale_mask(profile: Tensor) -> Tensor:
    """(B, 14) piece profiles -> (B, 128) float: 1 on the pitches whose pitch class lies outside the
    major (or its relative natural minor) scale that holds the largest share of the piece's notes (the
    scale `evaluation.metrics.scale_consistency` would pick for it); all zeros for a silent profile."""
    major = torch.zeros(12, device=profile.device)
    major[list(MAJOR_SCALE)] = 1.0
    scales = torch.stack([torch.roll(major, root) for root in range(12)])  # (12 roots, 12)
    best = scales[(profile[:, :12] @ scales.T).argmax(-1)]  # (B, 12)
    off = (1.0 - best) * (profile[:, :12].sum(-1, keepdim=True) > 0)
    return off[:, torch.arange(N_PITCHES, device=profile.device) % 12]


PROFILE_FLOOR = 0.02  # added to a profile's pitch-class shares in `profile_log_prior`


def profile_log_prior(profile: Tensor) -> Tensor:
    """(B, 14) piece profiles -> (B, 128): log(share of the pitch's class in the piece + 0.02) minus that
    of the piece's commonest class (0 there, negative elsewhere: -2.6 for an unused class when the
    commonest holds a quarter of the notes); all zeros for a silent profile."""
    shares = torch.log(profile[:, :12] + PROFILE_FLOOR)
    prior = (shares - shares.max(-1, keepdim=True).values) * (profile[:, :12].sum(-1, keepdim=True) > 0)
    return prior[:, torch.arange(N_PITCHES, device=profile.device) % 12]


def out_of_key_mass(logits: Tensor, profile: Tensor, tau: float = 1.0) -> Tensor:
    """Mean over bars and steps of softmax(logits (B, T, 129) / tau)'s mass on out-of-key pitches."""
    probs = torch.softmax(logits / tau, dim=-1)[..., :N_PITCHES]
    return (probs * out_of_key_mask(profile)[:, None, :]).sum(-1).mean()


def key_statistics(bars: Tensor, profile: Tensor) -> dict[str, float]:
    """Of bars (B, T, 128) written for pieces with profiles (B, 14): "out_of_key", the share of
    sounding steps off the profile (`out_of_key_mask`; about 0.01 for real bars); "leap", the mean size in
    semitones of the steps between consecutive different notes within a bar."""
    sounding = bars.sum(-1)  # (B, T) 1 where a note sounds
    off = (bars * out_of_key_mask(profile)[:, None, :]).sum(-1)
    pitches = bars_to_pitches(bars)
    both = (pitches[:, 1:] >= 0) & (pitches[:, :-1] >= 0) & (pitches[:, 1:] != pitches[:, :-1])
    leaps = (pitches[:, 1:] - pitches[:, :-1]).abs()[both].float()
    return {"out_of_key": float(off.sum() / sounding.sum().clamp(min=1)),
            "leap": float(leaps.mean()) if len(leaps) else 0.0}


def chord_pitch_classes(chords: np.ndarray) -> np.ndarray:
    """(m, 13) chord vectors -> (12,) how many of the chords hold each pitch class (root, third, fifth)."""
    hist = np.zeros(12)
    for vector in np.asarray(chords):
        if vector[:12].any():
            root = int(vector[:12].argmax())
            hist[[root, (root + (3 if vector[12] > 0 else 4)) % 12, (root + 7) % 12]] += 1
    return hist


SHIFTS = (0, 1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6)  # transpositions tried, the smallest first on ties


def fit_to_chords(pitches: Tensor, profiles: np.ndarray, chords: np.ndarray) -> tuple[Tensor, np.ndarray]:
    """Move each start bar (n, T) pitches (-1 rest) and its piece profile (n, 14) by the shift in
    -5..+6 semitones whose pitch classes cover the chord progression's (m, 13) tones best, so a real
    bar in D major starts a piece asked to follow "C G Am F" in C. Returns both moved."""
    hist = chord_pitch_classes(chords)
    if not hist.any():
        return pitches, profiles
    scores = np.stack([np.roll(profiles[:, :12], s, axis=1) @ hist for s in SHIFTS], axis=1)  # (n, shifts)
    shifts = np.array(SHIFTS)[scores.argmax(1)]
    moved = pitches.long() + torch.from_numpy(shifts)[:, None]
    moved = torch.where(pitches >= 0, moved.clamp(0, N_PITCHES - 1), pitches.long())
    return moved, np.stack([transpose_profile(p, int(s)) for p, s in zip(profiles, shifts, strict=True)])


REGISTER_REACH = 12  # semitones either side of a piece's mean pitch in `relative_histograms`


def relative_histograms(bars: Tensor, profile: Tensor) -> Tensor:
    """Bars (B, T, 128) of pieces with profiles (B, 14) -> (B, 12 + 25) histograms relative to each
    piece: [:12] the share of steps on each pitch class counted from the piece's most used one (so a
    C major bar of a C major song and a D major bar of a D major song look alike); [12:] the share on
    each pitch from 12 below to 12 above the piece's (rounded) mean pitch. Rests count in neither."""
    b = len(bars)
    pitch = torch.arange(N_PITCHES, device=bars.device)
    anchor = profile[:, :12].argmax(-1)  # (B,)
    fold = F.one_hot((pitch[None] - anchor[:, None]) % 12, 12).to(bars.dtype)  # (B, 128, 12)
    classes = torch.bmm(bars, fold).mean(1)  # (B, 12)
    centre = (60 + 12 * profile[:, 12]).round().long()  # (B,)
    window = (centre[:, None] + torch.arange(-REGISTER_REACH, REGISTER_REACH + 1, device=bars.device)[None])
    inside = (window >= 0) & (window < N_PITCHES)
    steps = bars.mean(1)  # (B, 128) share of steps per pitch
    register = torch.gather(steps, 1, window.clamp(0, N_PITCHES - 1)) * inside
    return torch.cat([classes, register.reshape(b, -1)], dim=-1)


def repeat_share(bars: Tensor, prev: Tensor) -> Tensor:
    """(B,) share of the steps of each bar (B, T, 128) that sound the same pitch as the same step of the
    bar before it (B, T, 128); 1 for a bar that repeats its predecessor note for note (rests aside)."""
    return (bars * prev).sum((1, 2)) / bars.shape[1]
