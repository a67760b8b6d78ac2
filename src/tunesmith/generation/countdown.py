"""Generation with bar countdown tokens (`events` with `countdown: K`; `representations/countdown.py`).

A countdown model learned that `Bar_k` opens a bar with k bars after it and that the piece ends (EOS)
in the bar of `Bar_0`. Generating N bars, the grammar constraint forces the right bar token at every bar
line (`EventsGrammar.expect`), so the model always knows how many bars remain and can plan its cadence:

- `--ending bars` (default): the piece has exactly the requested bars. The bar tokens count down to the
  requested end; in the last bar the end token is allowed after any complete note (and nothing else is
  drawn after it); the piece is cut at the requested bar line, so a final chord that stops early is
  followed by silence to the bar line.
- `--ending model`: the model chooses the length between `bars` and `bars + extra_bars(bars)`: at each bar
  line it may start the countdown (`Bar_{K-1}`, or a shorter one when fewer bars are left to the
  longest length) or stay "far" while a later start still ends in time; then the countdown runs as above
  and the piece is cut at the first bar line after its last bar.
- A primer: with `--ending bars` its bar lines are relabelled with their true distance to the requested
  end (it is known); otherwise (`--ending model`, `--steps`) they are all "far". Bars are REMI's (4/4,
  as the model was trained); for a primer in another meter the requested end (in the primer's meter)
  is mapped to the REMI bar it falls in.
- `candidates = m > 1` (`--candidates M`; exact bars only): each piece is drawn m times and the draw that
  closes best is kept: the most cadence tests passed on its own notes, then the highest P(EOS) where it
  ended (`generation/best_ending.py`: a decoding option).
- `--no-constrain` or `--steps`: nothing is forced; the end token stays banned as for other models, and
  the model writes what countdown it likes (the grammar still counts the tokens it breaks).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from symusic import Score

from tunesmith.core.errors import UserError
from tunesmith.core.score import bar_line_after
from tunesmith.generation.best_ending import EosRecorder, Kept, best_rows, candidates_of, ending_scores
from tunesmith.generation.endings import extra_bars
from tunesmith.generation.sampling import GrammarConstraint, sample_sequence


def counts_down(rep) -> bool:
    """Whether `rep` writes bar countdown tokens."""
    return getattr(rep, "countdown", None) is not None


def generate_counted(stream, count: int, request, generator: torch.Generator) -> list[Score]:
    """`TokenStream.generate` for a countdown representation (module docstring): `count` pieces."""
    rep, countdown = stream.rep, stream.rep.countdown
    enforce = getattr(request, "constrain", True) and request.steps is None
    ending = getattr(request, "ending", "bars")
    bar_ticks = 4 * rep.tpq  # REMI bars: 4/4
    least = most = None
    if request.steps is None:
        least = bar_line_after(stream.clock, request.bars, stream.primer_end)
        most = least if ending == "bars" else \
            bar_line_after(stream.clock, request.bars + extra_bars(request.bars), stream.primer_end)
    done_bars = countdown.n_bars(stream.body)  # REMI bars the primer opened
    m = _candidates(request, enforce, ending)
    count *= m  # rows g*m .. g*m + m - 1 are the candidates of piece g
    if enforce and ending == "bars":
        body = countdown.label(stream.body, math.ceil(least / bar_ticks))
    else:
        body = countdown.far(stream.body)
    prefix = torch.tensor([[rep.bos_id, *body.tolist()]] * count, dtype=torch.long)
    constraint = GrammarConstraint(stream.grammar, body.tolist(), count, enforce)
    banned = sorted({rep.pad_id, rep.bos_id} | (set() if enforce else {rep.eos_id}))
    if enforce:  # bars left after the next bar line: between those of the shortest and longest lengths
        low, high = (math.ceil(tick / bar_ticks) - 1 - done_bars for tick in (least, most))
        stream.grammar.expect(constraint.state, low, high)
    if request.steps is not None:
        return stream.sample_steps(prefix, request, generator, banned, constraint)
    eos = rep.eos_id

    def finished(drawn: torch.Tensor) -> bool:
        return all(eos in row or stream.span(row) >= most for row in drawn.tolist())

    budget = stream.budget(request.bars + (extra_bars(request.bars) if ending == "model" else 0))
    watch = EosRecorder(constraint, eos, count) if m > 1 else constraint
    new = sample_sequence(stream.loaded.model, prefix, budget, request.sampling, generator, banned,
                          constraint=watch, finished=finished, check_every=8)
    pieces = [_piece(stream, row, eos, least, most, bar_ticks, done_bars) for row in new.tolist()]
    if m > 1:
        keep = best_rows(ending_scores(pieces, watch.end_scores(new.tolist())), m)
        new, constraint, pieces = new[keep], Kept(watch, keep), [pieces[k] for k in keep]
    stream.record(request, constraint, new)
    return pieces


def _candidates(request, enforce: bool, ending: str) -> int:
    """Draws per piece (`best_ending.candidates_of`); more than one only for exact bars under the grammar."""
    try:
        m = candidates_of(request)
    except ValueError as error:
        raise UserError(str(error)) from None
    if m > 1 and not (enforce and ending == "bars" and request.steps is None):
        raise UserError("candidates > 1 needs exact bars under the grammar (--ending bars, no --steps, "
                        "no --no-constrain)")
    return m


def _piece(stream, row: list[int], eos: int, least: int, most: int, bar_ticks: int, done_bars: int) -> Score:
    """One drawn row (ids after the prefix) -> its piece, cut at its end (module docstring): after EOS,
    the end of the last bar the model opened."""
    if eos not in row:
        return stream.finish(row, least, most)
    row = row[:row.index(eos)]
    bars = done_bars + stream.rep.countdown.n_bars(np.asarray(row, np.int64))
    return stream.finish(row, least, most, last=bars * bar_ticks)
