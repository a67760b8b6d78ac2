"""Checkpoint -> new pieces -> MIDI (and WAV / MP3 / PNG on request).

Token models (those with a `stepper`) are sampled here with the shared sampler; other families
(bar GANs, piano-roll models) implement `generate_scores(representation, request, primer)` and return
Scores themselves. Everything written goes through `write_outputs`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from symusic import Score

from tunesmith.core.errors import SkipFile, UserError
from tunesmith.core.score import bars_after
from tunesmith.generation.sampling import SamplingConfig, sample_sequence
from tunesmith.models import build_model
from tunesmith.representations import representation_from_dict
from tunesmith.representations.base import Representation
from tunesmith.training.checkpoint import load_checkpoint


@dataclass
class GenerateRequest:
    n: int = 4
    bars: int | None = 8  # length of each piece in bars (4/4 when the piece has no time signature)
    steps: int | None = None  # or: exactly this many new tokens / frames
    primer: Path | None = None
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    seed: int = 0
    chords: list[str] | None = None
    audio: str | None = None  # None, "wav" or "mp3"
    plot: bool = False


@dataclass
class LoadedModel:
    model: torch.nn.Module
    representation: Representation
    checkpoint: dict[str, Any]


def load_model(checkpoint_path: Path | str, device: str = "cpu") -> LoadedModel:
    """Rebuild model and representation from a self-describing checkpoint (file or shipped name)."""
    payload = load_checkpoint(checkpoint_path, map_location=device)
    model = build_model(payload["model"]["name"], payload["model"]["config"])
    model.load_state_dict(payload["weights"])
    model.to(device).eval()
    return LoadedModel(model, representation_from_dict(payload["representation"]), payload)


def read_primer(path: Path) -> Score:
    """The primer MIDI file, through the guarded reader; anything unreadable is a UserError."""
    from tunesmith.io.midi import read_midi

    if not Path(path).is_file():
        raise UserError(f"primer {path} does not exist")
    try:
        return read_midi(Path(path))
    except SkipFile as reason:
        raise UserError(f"primer {path} is not a readable MIDI file: {reason}") from None


def generate_scores(loaded: LoadedModel, request: GenerateRequest) -> list[Score]:
    """`request.n` new pieces (each starting with the primer when one is given)."""
    torch.manual_seed(request.seed)
    primer = read_primer(request.primer) if request.primer else None
    if hasattr(loaded.model, "stepper"):
        return _sample_tokens(loaded, request, primer)
    return loaded.model.generate_scores(loaded.representation, request, primer)


def _sample_tokens(loaded: LoadedModel, request: GenerateRequest, primer: Score | None) -> list[Score]:
    rep = loaded.representation
    prefix = [rep.bos_id] + (rep.encode(primer).tolist() if primer is not None else [])
    n_steps = request.steps or _steps_for_bars(loaded, request.bars or 8)  # new tokens, after the primer
    tokens = torch.tensor([prefix] * request.n, dtype=torch.long)
    generator = torch.Generator().manual_seed(request.seed)
    new = sample_sequence(loaded.model.stepper(), tokens, n_steps, request.sampling, generator,
                          stop_id=None if request.steps else rep.eos_id, banned_ids=[rep.pad_id, rep.bos_id])
    primer_end = rep.decode(torch.tensor(prefix[1:], dtype=torch.long).numpy()).end() if primer else 0
    pieces = []
    for row in new.tolist():
        body = prefix[1:] + [t for t in row if t != rep.eos_id]
        score = rep.decode(torch.tensor(body).numpy())
        pieces.append(bars_after(score, request.bars, primer_end) if request.bars and not request.steps else score)
    return pieces


def _steps_for_bars(loaded: LoadedModel, bars: int) -> int:
    """Token budget for `bars` bars: the training data's tokens per quarter x 4 x bars, with margin."""
    per_quarter = float(loaded.checkpoint.get("provenance", {}).get("tokens_per_quarter", 4.0))
    return int(bars * 4 * per_quarter * 1.5) + 8


def write_outputs(scores: list[Score], out: Path, request: GenerateRequest, stem: str = "sample") -> list[Path]:
    """Write each score as MIDI, plus audio and a piano-roll PNG on request; returns every path written."""
    from tunesmith.io.midi import write_midi

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for i, score in enumerate(scores, start=1):
        base = out / f"{stem}_{i:02d}"
        write_midi(score, base.with_suffix(".mid"))
        written.append(base.with_suffix(".mid"))
        if score.note_num() == 0:  # nothing to hear or draw; the (empty) MIDI file still says so
            print(f"{base.name}: the model produced no notes; no audio or plot written", file=sys.stderr)
            continue
        if request.audio:
            from tunesmith.io.audio import render_score

            render_score(score, base.with_suffix(f".{request.audio}"))
            written.append(base.with_suffix(f".{request.audio}"))
        if request.plot:
            from tunesmith.io.plot import plot_score

            plot_score(score, base.with_suffix(".png"), title=f"{stem} {i}")
            written.append(base.with_suffix(".png"))
    return written


def generate_command(checkpoint: str, out: Path, request: GenerateRequest) -> list[Path]:
    """`tunesmith generate`: load, generate, write."""
    loaded = load_model(checkpoint)
    return write_outputs(generate_scores(loaded, request), out, request)
