"""How an autoregressive family's elements become pieces of an exact length.

- `TokenStream` (data kind "tokens"): the prefix is [BOS] + the primer's tokens; padding, BOS and EOS
  are never drawn (a piece ends where we cut it, not when the model tires); sampling goes on until
  every piece's decoded notes reach the bar line `bars` bars after the primer, then each is cut there.
  Where the representation has a grammar (`representations/grammar.py`: `events`, `notes`), each step
  masks the tokens that would not decode (constrained decoding; `request.constrain` False only
  counts them), and `request.decoding` gets, per piece, the tokens sampled and how many of them the
  grammar forbids (0 when constrained).
- `FrameStream` (data kind "frames"): a grid of frames, so the length is known in advance: the rest of
  the primer's last bar plus `bars` bars of frames; the prefix is a silent frame + the primer's frames.

With `steps`, exactly that many tokens / frames are drawn instead (a token piece may then stop inside a
note: its last tokens, allowed so far, make no note yet).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from symusic import Score

from tunesmith.core.constants import PIANO_KEYS
from tunesmith.core.errors import SkipFile, UserError
from tunesmith.core.score import bar_line_after, copy_meta, cut_at
from tunesmith.generation.endings import EndingWatch, extra_bars
from tunesmith.generation.sampling import GrammarConstraint, sample_sequence
from tunesmith.models.checkpoint import LoadedModel
from tunesmith.representations.grammar import grammar_for

log = logging.getLogger(__name__)


def stream_for(loaded: LoadedModel, primer: Score | None):
    """The stream that fits the checkpoint's data kind."""
    kinds = {"tokens": TokenStream, "frames": FrameStream}
    if loaded.model.data_kind not in kinds:
        raise UserError(f"a {loaded.name} model has no autoregressive generation for {loaded.model.data_kind}")
    return kinds[loaded.model.data_kind](loaded, primer)


def _clock(tpq: int, primer: Score | None) -> Score:
    """An empty score at `tpq` that carries the primer's meter (4/4 without a primer): bar lines."""
    return Score(tpq) if primer is None else copy_meta(primer, tpq)


def _encode_primer(loaded: LoadedModel, primer: Score) -> np.ndarray:
    """The primer as the model's representation holds it; UserError when that keeps nothing (a drums-only
    primer, pitches outside the model's range): generating "after" it would silently ignore it."""
    rep = loaded.representation
    try:
        array = rep.encode(primer)
    except SkipFile as reason:
        raise UserError(f"the primer cannot be read as this model's {rep.name}: {reason}") from None
    if not len(array) or (rep.is_tokens and rep.decode(array).note_num() == 0) or not np.asarray(array).any():
        raise UserError(f"the primer has no notes this model's {rep.name} representation can hold "
                        "(only drums, or pitches outside its range?)")
    return array


class TokenStream:
    """Token families: prefix ids, bar-exact stopping, decoding."""

    def __init__(self, loaded: LoadedModel, primer: Score | None) -> None:
        self.loaded, self.rep = loaded, loaded.representation
        self.body = _encode_primer(loaded, primer).tolist() if primer is not None else []
        self.clock = _clock(self.rep.tpq, primer)
        self.primer_end = self.rep.span(np.asarray(self.body, dtype=np.int64)) if self.body else 0
        self.grammar = grammar_for(self.rep)

    def generate(self, count: int, request, generator: torch.Generator) -> list[Score]:
        prefix = torch.tensor([[self.rep.bos_id, *self.body]] * count, dtype=torch.long)
        banned = sorted({self.rep.pad_id, self.rep.bos_id, self.rep.eos_id})
        model, sampling = self.loaded.model, request.sampling
        constraint = None if self.grammar is None else \
            GrammarConstraint(self.grammar, self.body, count, getattr(request, "constrain", True))
        if request.steps is not None:
            new = sample_sequence(model, prefix, request.steps, sampling, generator, banned, constraint=constraint)
            self._record(request, constraint, new)
            return [self.decode(row) for row in new.tolist()]
        if getattr(request, "ending", "bars") == "model":
            return self._generate_to_model_ending(count, request, generator, prefix, constraint)
        budget, end = self._budget(request.bars), bar_line_after(self.clock, request.bars, self.primer_end)
        new = sample_sequence(model, prefix, budget, sampling, generator, banned, constraint=constraint,
                              finished=lambda drawn: all(self._span(r) >= end for r in drawn.tolist()))
        self._record(request, constraint, new)
        pieces = []
        for row in new.tolist():
            if self._span(row) < end:
                log.warning("a piece reached only %d of %d ticks within %d tokens", self._span(row), end, budget)
            pieces.append(cut_at(self.decode(row), end))
        return pieces

    def _generate_to_model_ending(self, count: int, request, generator: torch.Generator, prefix: torch.Tensor,
                                  grammar: GrammarConstraint | None) -> list[Score]:
        """`--ending model` (generation/endings.py): sample to `bars + extra_bars` bars, then end each
        piece after the note, from bar `bars` on, where the model's P(EOS) was highest, at the next bar line."""
        rep = self.rep
        least = bar_line_after(self.clock, request.bars, self.primer_end)
        most = bar_line_after(self.clock, request.bars + extra_bars(request.bars), self.primer_end)
        watch = EndingWatch(grammar, rep.eos_id, count)

        def finished(drawn: torch.Tensor) -> bool:
            spans = np.array([self._span(r) for r in drawn.tolist()])
            watch.ready |= spans >= least
            return bool(np.all(spans >= most))

        budget = self._budget(request.bars + extra_bars(request.bars))
        banned = sorted({rep.pad_id, rep.bos_id, rep.eos_id})
        new = sample_sequence(self.loaded.model, prefix, budget, request.sampling, generator, banned,
                              constraint=watch, finished=finished, check_every=8)
        self._record(request, watch, new)
        pieces = []
        for body in watch.ends(new.tolist()):
            end = min(most, bar_line_after(self.clock, 1, max(self._span(body), least) - 1))
            pieces.append(cut_at(self.decode(body), end))
        return pieces

    def _record(self, request, constraint: GrammarConstraint | None, new: torch.Tensor) -> None:
        """Per piece of this batch (new: (count, n) ids), tokens sampled and how many the grammar forbids,
        appended to `request.decoding` (without a grammar every sequence decodes: 0)."""
        report = getattr(request, "decoding", None)
        if report is None:
            return
        invalid = constraint.invalid.tolist() if constraint is not None else [0] * new.shape[0]
        report["grammar"] = None if self.grammar is None else type(self.grammar).__name__
        grammar_constraint = getattr(constraint, "inner", constraint)  # an EndingWatch wraps one
        report["constrained"] = grammar_constraint is not None and grammar_constraint.enforce
        report.setdefault("pieces", []).extend({"sampled_tokens": new.shape[1], "invalid_tokens": k} for k in invalid)
        report["sampled_tokens"] = sum(p["sampled_tokens"] for p in report["pieces"])
        report["invalid_tokens"] = sum(p["invalid_tokens"] for p in report["pieces"])

    def decode(self, row: list[int]) -> Score:
        return self.rep.decode(np.asarray(self.body + row, dtype=np.int64))

    def _span(self, row: list[int]) -> int:
        return self.rep.span(np.asarray(self.body + row, dtype=np.int64))

    def _budget(self, bars: int) -> int:
        """Most tokens drawn for `bars` bars: 4x the training data's tokens per 4/4 bar, and 64 more."""
        per_quarter = float(self.loaded.checkpoint.get("provenance", {}).get("tokens_per_quarter", 8.0))
        return int(bars * 4 * per_quarter * 4) + 64


class FrameStream:
    """Frame families (a grid of `steps_per_quarter` frames per quarter): exact frame counts."""

    def __init__(self, loaded: LoadedModel, primer: Score | None) -> None:
        self.loaded, self.rep, self.model = loaded, loaded.representation, loaded.model
        self.steps_per_quarter = int(getattr(self.rep.config, "steps_per_quarter", 4))
        self.primer = self.model.to_elements(_encode_primer(loaded, primer)) if primer is not None else None
        self.meter = primer

    def generate(self, count: int, request, generator: torch.Generator) -> list[Score]:
        silence = self.model.to_elements(np.zeros((1, PIANO_KEYS, 2), dtype=bool))
        context = silence if self.primer is None else torch.cat([silence, self.primer])
        prefix = context.unsqueeze(0).expand(count, *context.shape).contiguous()
        n_frames = request.steps if request.steps is not None else self._frames_for(request.bars)
        new = sample_sequence(self.model, prefix, n_frames, request.sampling, generator)
        head = self.primer if self.primer is not None else silence[:0]
        return [self._decode(torch.cat([head, row])) for row in new]

    def _decode(self, frames: torch.Tensor) -> Score:
        """Frames (T, ...) -> a Score lasting exactly T frames."""
        score = self.rep.decode(self.model.from_elements(frames))
        return cut_at(score, len(frames) * (score.ticks_per_quarter // self.steps_per_quarter))

    def _frames_for(self, bars: int) -> int:
        """Frames from the primer's end to the bar line `bars` bars after the bar it ends in."""
        clock = _clock(self.rep.tpq, self.meter)
        primer_frames = 0 if self.primer is None else len(self.primer)
        ticks_per_frame = clock.ticks_per_quarter // self.steps_per_quarter
        end = bar_line_after(clock, bars, primer_frames * ticks_per_frame)
        if end % ticks_per_frame:
            raise UserError("the primer's meter does not fit this model's grid of "
                            f"{self.steps_per_quarter} frames per quarter note")
        return end // ticks_per_frame - primer_frames
