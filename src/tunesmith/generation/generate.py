"""Checkpoint -> new pieces -> MIDI (and WAV / MP3 / PNG on request): the one generation path.

Every family goes through `generate_scores`: the options are checked against what the family declares
(`models/base.py`), the primer is cut to its last `primer_bars` bars, then an autoregressive family is
driven by the shared sampler (`streams.py` turns its elements into pieces and measures their length)
and a one-shot family is asked for its `sample`. Lengths are exact: `bars` new bars after the primer's
last bar (the bar the primer ends in belongs to it), or `steps` new tokens / frames.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from symusic import Score

from tunesmith.core.errors import SkipFile, UserError, require_file
from tunesmith.core.score import bar_line_after, cut_at, last_bars, with_meter
from tunesmith.generation.audio_output import generate_audio_command, is_audio_checkpoint  # audio-vaegan
from tunesmith.generation.streams import stream_for
from tunesmith.models.base import SamplePlan, check_options
from tunesmith.models.checkpoint import LoadedModel, load_model
from tunesmith.models.distributions import SamplingConfig, is_default

log = logging.getLogger(__name__)

BATCH = 16  # pieces sampled together; each batch is written before the next starts


@dataclass
class GenerateRequest:
    n: int = 4
    bars: int = 8  # new bars per piece (the primer's meter, else 4/4)
    steps: int | None = None  # or: exactly this many new tokens / frames
    primer: Path | None = None
    primer_bars: int = 8  # the primer's last bars that are kept and fed as context
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    seed: int = 0
    chords: list[str] | None = None
    audio: str | None = None  # None, "wav" or "mp3"
    plot: bool = False
    constrain: bool = True  # constrained decoding: mask the tokens the representation's grammar forbids
    ending: str = "bars"  # "bars": cut after exactly `bars` bars; "model": where the model ends it (endings.py)
    decoding: dict = field(default_factory=dict)  # constrained decoding: filled per piece (generation/streams.py)
    # countdown token models, exact bars: draws per piece; the draw whose end the model believed in most is
    # kept (generation/best_ending.py)
    candidates: int = 1

    def options(self) -> dict[str, object]:
        """The generation options asked for (None: not asked), by the names families declare."""
        s = self.sampling
        return {"temperature": s.temperature, "top_k": s.top_k, "top_p": s.top_p, "chords": self.chords,
                "min_p": s.min_p, "primer": self.primer,
                "candidates": self.candidates if self.candidates != 1 else None}


def read_primer(path: Path, bars: int) -> Score:
    """The primer MIDI file's last `bars` bars, through the guarded reader; unreadable: UserError."""
    from tunesmith.io.midi import read_midi

    require_file(path, "primer")
    try:
        score = read_midi(Path(path))
    except SkipFile as reason:
        raise UserError(f"primer {path} is not a readable MIDI file: {reason}") from None
    if score.note_num() == 0:
        raise UserError(f"primer {path} holds no notes to continue")
    return last_bars(score, bars)


def generate_batches(loaded: LoadedModel, request: GenerateRequest,
                     primer: Score | None = None) -> Iterator[list[Score]]:
    """The `request.n` pieces, a batch at a time (each holds the primer context, then the new music);
    `primer`: `request.primer` already read by `read_primer` (it is read here otherwise)."""
    model, request = loaded.model, with_checkpoint_defaults(loaded, request)
    if model.data_kind == "audio":  # audio-vaegan: writes audio, through generate_command only
        raise UserError(f"the {model.name} family writes audio, not scores: use tunesmith generate")  # audio-vaegan
    check_options(model, request.options())
    if request.steps is not None and model.generation == "one-shot":
        raise UserError(f"a {model.name} model writes whole bars; use --bars instead of --steps")
    check_ending(model, request)
    if primer is None and request.primer:
        primer = read_primer(request.primer, request.primer_bars)
    torch.manual_seed(request.seed)
    generator = torch.Generator().manual_seed(request.seed)
    stream = stream_for(loaded, primer) if model.generation == "autoregressive" else None  # primer encoded once
    for start in range(0, request.n, BATCH):
        count = min(BATCH, request.n - start)
        pieces = stream.generate(count, request, generator) if stream is not None \
            else _one_shot(loaded, request, primer, count, generator)
        yield [with_meter(p, primer) if primer is not None else p for p in pieces]


def with_checkpoint_defaults(loaded: LoadedModel, request: GenerateRequest) -> GenerateRequest:
    """The request with the checkpoint's sampling defaults (`LoadedModel.sampling_defaults`) when the user
    asked for no sampling option; any option the user gives replaces them all."""
    if not loaded.sampling_defaults or not is_default(request.sampling):
        return request
    return replace(request, sampling=SamplingConfig(**loaded.sampling_defaults))


def check_ending(model, request: GenerateRequest) -> None:
    """`--ending model` needs a token family (trained with an end token) and a length in bars."""
    from tunesmith.generation.endings import ENDINGS

    if request.ending not in ENDINGS:
        raise UserError(f"--ending must be one of {', '.join(ENDINGS)}, not {request.ending!r}")
    if request.ending == "model" and (model.data_kind != "tokens" or model.generation != "autoregressive"):
        raise UserError(f"--ending model needs a token family that learned an end token; a {model.name} "
                        "model's pieces end where their bars do (use --ending bars)")
    if request.ending == "model" and request.steps is not None:
        raise UserError("--ending model ends pieces at least --bars bars in; it does not go with --steps")


def generate_scores(loaded: LoadedModel, request: GenerateRequest) -> list[Score]:
    """All `request.n` pieces as a list."""
    return [score for batch in generate_batches(loaded, request) for score in batch]


def _one_shot(loaded: LoadedModel, request: GenerateRequest, primer: Score | None, count: int,
              generator: torch.Generator) -> list[Score]:
    if loaded.model.name == "band":  # band-5: writes five tracks in its own multitrack layout
        from tunesmith.generation.band import band_scores  # band-5
        return band_scores(loaded.model, request, primer, count, generator)  # band-5
    rep = loaded.representation
    context = None
    if primer is not None:
        try:
            context = rep.encode(primer)
        except SkipFile as reason:
            raise UserError(f"the primer cannot be read as this model's {rep.name}: {reason}") from None
    plan = SamplePlan(count, request.bars, context, request.chords, request.sampling)
    bars = request.bars + (len(context) if context is not None else 0)
    pieces = [rep.decode(array) for array in loaded.model.sample(plan, generator)]
    return [cut_at(p, bar_line_after(p, bars)) for p in pieces]


def generate_command(checkpoint: str, out: Path, request: GenerateRequest, stem: str = "sample") -> Iterator[Path]:
    """`tunesmith generate`: read the primer, load, generate batch by batch, write each piece as its batch
    is done (an interrupted run keeps the finished pieces, listed in `generation.json`, which is
    rewritten after every piece); yields each path written."""
    from tunesmith.generation.outputs import provenance, write_piece, write_sidecar
    from tunesmith.io.atomic import sweep_temp_files

    if is_audio_checkpoint(checkpoint):  # audio-vaegan: audio in, audio out (generation/audio_output.py)
        yield from generate_audio_command(checkpoint, out, request, stem)  # audio-vaegan
        return  # audio-vaegan
    primer = read_primer(request.primer, request.primer_bars) if request.primer else None  # a bad one fails fast
    loaded = load_model(checkpoint)
    if loaded.model.cpu_threads:  # recurrent steps are small: one thread beats two fighting ones
        torch.set_num_threads(loaded.model.cpu_threads)
    out.mkdir(parents=True, exist_ok=True)
    if out.is_dir():
        sweep_temp_files(out)  # what a killed earlier run left half-written
    request = with_checkpoint_defaults(loaded, request)  # the sidecar records the sampling actually used
    record, written, width = provenance(loaded, request), [], max(2, len(str(request.n)))
    record["options"].pop("decoding", None)  # constrained decoding: its report is filled as pieces are made
    record["decoding"] = request.decoding  # tokens sampled, and how many the grammar forbids, per piece
    for batch in generate_batches(loaded, request, primer):
        for score in batch:
            index = sum(p.suffix == ".mid" for p in written) + 1
            paths = write_piece(score, out / f"{stem}_{index:0{width}d}", request, f"{stem} {index}")
            written += paths
            write_sidecar(out, record, written)
            yield from paths
