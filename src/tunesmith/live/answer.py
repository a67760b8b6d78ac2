"""One answer to a phrase, through the one generation path: the phrase (a Score) is written as the primer
file of a `GenerateRequest` (n=1) and `generate_batches` continues it; the new bars come back as notes in
beats, counted from the answer's first note (the leading rest is dropped: the answer starts on time)."""

from __future__ import annotations

import contextlib
import itertools
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from symusic import Score

from tunesmith.core.errors import UserError
from tunesmith.core.score import bar_starts, note_table


class Cancelled(Exception):
    """The phrase changed while its answer was being computed; the work was stopped."""


@dataclass(frozen=True)
class AnswerNote:
    pitch: int
    velocity: int
    start: float  # beats after the answer's first note
    duration: float  # beats


@dataclass
class AnswerOptions:
    """What each answer asks the model for (the family's options are checked once, at start)."""

    bars: int = 2  # new bars per answer
    primer_bars: int = 2  # the phrase's last bars fed as context
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    seed: int = 0  # the first answer's seed; each answer adds one


class Answerer:
    """`answerer(phrase) -> [AnswerNote]` for one loaded checkpoint."""

    def __init__(self, loaded, options: AnswerOptions, work_dir: Path | None = None) -> None:
        from tunesmith.models.base import check_options

        self.loaded, self.options = loaded, options
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="tunesmith-live-"))
        self._count = itertools.count()
        check_options(loaded.model, self._request(None).options() | {"primer": "live input"})

    def __call__(self, phrase: Score, cancelled: Callable[[], bool] = lambda: False) -> list[AnswerNote]:
        """The answer to `phrase`; raises Cancelled as soon as `cancelled()` turns true (checked at every
        network call), so speculative work for a phrase the player went on with stops at once."""
        from tunesmith.generation.generate import generate_batches
        from tunesmith.io.midi import write_midi

        index = next(self._count)
        path = write_midi(phrase, self.work_dir / f"phrase_{index % 4}.mid")
        request = self._request(path, seed=self.options.seed + index)
        with _watch(self.loaded.model, cancelled):
            score = next(generate_batches(self.loaded, request))[0]
        return new_notes(score, self.options.bars)

    def _request(self, primer: Path | None, seed: int = 0):
        from tunesmith.generation.generate import GenerateRequest
        from tunesmith.models.distributions import SamplingConfig

        o = self.options
        return GenerateRequest(n=1, bars=o.bars, primer=primer, primer_bars=o.primer_bars, seed=seed,
                               sampling=SamplingConfig(temperature=o.temperature, top_k=o.top_k, top_p=o.top_p,
                                                       min_p=o.min_p))


@contextlib.contextmanager
def _watch(model, cancelled: Callable[[], bool]):
    """Forward pre-hooks on the model's modules that raise Cancelled once `cancelled()` is true."""

    def hook(module, args):
        if cancelled():
            raise Cancelled("the phrase changed")

    handles = [m.register_forward_pre_hook(hook) for m in model.modules()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def new_notes(score: Score, bars: int) -> list[AnswerNote]:
    """The notes of the last `bars` bars of a generated piece (which ends on a bar line), in beats from
    the first of them; drums are left out."""
    end = score.end()
    starts = bar_starts(score, end_tick=end + 1)
    if len(starts) == 0:
        raise UserError("the model returned an empty piece")
    begin = int(starts[max(0, len(starts) - 1 - bars)])
    table = note_table(score)
    keep = (table["start"] >= begin) & ~table["is_drum"]
    if not keep.any():
        return []
    tpq, first = score.ticks_per_quarter, int(table["start"][keep].min())
    return [AnswerNote(int(p), int(v), (int(s) - first) / tpq, max(1, int(d)) / tpq)
            for p, v, s, d in zip(table["pitch"][keep], table["velocity"][keep], table["start"][keep],
                                  table["duration"][keep], strict=True)]
