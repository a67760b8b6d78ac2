"""Bar-by-bar generation for MidiNet: each new bar is conditioned on the bar before it.

The first condition is a primer bar (the last bar with notes of `--primer`, which is kept as the
piece's first bar) or, without a primer, a random real bar from the checkpoint's seed bank (used as
the condition only, not written). Then `bars` bars are generated, each from fresh noise and the bar
just generated. `--chords "C G Am F"` gives the chord of each generated bar, cycling when the
progression is shorter than the piece; a chord model given no chords generates with "no chord".
The generator's output is its argmax per step (a GAN has no likelihood to sample from), so the
variety between pieces comes from the noise and the seed bars; `--temperature` and friends are ignored.
"""

from __future__ import annotations

import numpy as np
import torch
from symusic import Score
from torch import Tensor

from tunesmith.core.errors import SkipFile, UserError
from tunesmith.models.midinet import pitches_to_bars
from tunesmith.representations.bars import BarsRepresentation, chord_vector


def chord_plan(model, names: list[str] | None, n_bars: int) -> Tensor | None:
    """(n_bars, 13) chord vectors for the generated bars (cycling `names`), or None for a model
    without chord conditioning. Unknown chord names and chords for a chord-less model are UserErrors."""
    if not model.config.chords:
        if names:
            raise UserError("this checkpoint was trained without chords; leave out --chords")
        return None
    if not names:
        return torch.zeros(n_bars, model.config.chord_dim)
    vectors = np.stack([chord_vector(name) for name in names])
    return torch.from_numpy(vectors[np.arange(n_bars) % len(vectors)])


def primer_bar(representation: BarsRepresentation, primer: Score) -> Tensor:
    """The last bar of the primer's melody that holds a note, (T, 128) float."""
    try:
        bars = representation.encode(primer)
    except SkipFile as reason:
        raise UserError(f"the primer cannot be read as 4/4 melody bars: {reason}") from None
    filled = np.flatnonzero(bars.reshape(len(bars), -1).any(axis=1))
    if not len(filled):
        raise UserError("the primer has no melody notes to continue")
    return torch.from_numpy(bars[filled[-1]].astype(np.float32))


def bank_bars(model, n: int, generator: torch.Generator) -> Tensor:
    """`n` random real bars (n, T, 128) from the seed bank stored in the checkpoint."""
    filled = int(min(model.bank_count.item(), model.config.seed_bank))
    if filled == 0:
        raise UserError("this checkpoint holds no real bars to start from; give a --primer MIDI file")
    pick = torch.randint(0, filled, (n,), generator=generator)
    return pitches_to_bars(model.bank_pitches[pick])


@torch.no_grad()
def continue_bars(model, start: Tensor, n_bars: int, chords: Tensor | None,
                  generator: torch.Generator) -> Tensor:
    """Generate `n_bars` bars after `start` (B, T, 128): returns (B, n_bars, T, 128) one-hot floats.

    `chords`: (n_bars, 13) shared by the whole batch, (B, n_bars, 13) per piece, or None.
    """
    prev, out = start.float(), []
    if chords is not None and chords.dim() == 2:
        chords = chords.expand(len(prev), -1, -1)
    for i in range(n_bars):
        noise = torch.randn(len(prev), model.config.noise_dim, generator=generator)
        chord = None if chords is None else chords[:, i].float()
        prev = model.fake_bars(prev, chord, noise)
        out.append(prev)
    return torch.stack(out, dim=1)


def generate_scores(model, representation, request, primer: Score | None) -> list[Score]:
    """`request.n` pieces of `request.bars` generated bars (default 8), plus the primer bar if given."""
    if not isinstance(representation, BarsRepresentation):
        raise UserError(f"a MidiNet checkpoint needs the bars representation, not {representation.name!r}")
    n_bars = request.bars or 8
    if n_bars < 1 or request.n < 1:
        raise UserError("--bars and --n must be at least 1")
    model.eval()
    generator = torch.Generator().manual_seed(request.seed)
    chords = chord_plan(model, request.chords, n_bars)
    if primer is not None:
        start = primer_bar(representation, primer).expand(request.n, -1, -1)
    else:
        start = bank_bars(model, request.n, generator)
    bars = continue_bars(model, start, n_bars, chords, generator)
    if primer is not None:
        bars = torch.cat([start[:, None], bars], dim=1)
    return [representation.decode(piece.numpy()) for piece in bars]

