"""The one sampler, separate from the networks and shared by every autoregressive family.

`sample_sequence` drives any autoregressive family (see `models/base.py`): its stepper is fed the
prefix once, element by element, then each step feeds only the element just drawn; the recurrent state
(or KV cache) carries the past. How one element is drawn from the network's output (temperature,
top-k, top-p, min-p) is `models/distributions.py`, through the family's `choose`.

Constrained decoding: a `GrammarConstraint` (a token representation's grammar over the batch,
`representations/grammar.py`) masks, at each step, the tokens that would make a sequence undecodable,
and counts the drawn tokens its grammar forbids (0 when it masks; the measure when it only watches).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from tunesmith.models.distributions import SamplingConfig


@torch.no_grad()
def sample_sequence(model, prefix: Tensor, n_steps: int, cfg: SamplingConfig,
                    generator: torch.Generator | None = None, banned: list[int] | None = None,
                    finished: Callable[[Tensor], bool] | None = None, check_every: int = 16,
                    constraint: GrammarConstraint | None = None) -> Tensor:
    """Continue `prefix` (batch, P >= 1, ...) by up to `n_steps` elements -> (batch, n, ...).

    `model` is an autoregressive family: `model.stepper()` gives the incremental view,
    `model.choose(out, cfg, generator)` draws one element from its output. `banned` ids (categorical
    outputs only: padding, BOS, EOS) are never drawn. `finished(new)` is asked every `check_every`
    steps with everything drawn so far; sampling stops early once it answers True. `constraint` (token
    families) is told every drawn token and, when it enforces its grammar, masks the logits first; one
    with an `observe(logits)` method also sees each step's logits before anything is masked.
    """
    stepper = model.stepper()
    state = stepper.initial_state(prefix.shape[0], prefix.device, generator)
    for t in range(prefix.shape[1]):
        out, state = stepper(prefix[:, t], state)
    new: list[Tensor] = []
    for step in range(n_steps):
        if hasattr(constraint, "observe"):  # e.g. `generation/endings.py`: the model's view before any mask
            constraint.observe(out)
        if banned:
            out = out.index_fill(-1, torch.tensor(banned, device=out.device), float("-inf"))
        if constraint is not None and constraint.enforce:
            out = out.masked_fill(~constraint.allowed(out.device), float("-inf"))
        new.append(model.choose(out, cfg, generator))
        if constraint is not None:
            constraint.update(new[-1])
        if finished is not None and (step + 1) % check_every == 0 and finished(torch.stack(new, 1)):
            break
        out, state = stepper(new[-1], state)
    return torch.stack(new, 1) if new else prefix[:, :0]


class GrammarConstraint:
    """A token grammar (`representations/grammar.py`) over a batch of sequences that all start with
    `body` (the primer's ids; a primer token the grammar forbids is skipped, as `count_invalid` does).

    `allowed()` is the (batch, vocab) mask for the next token; `update(ids)` moves every row on by one
    token in O(1) (no re-parsing) and counts, per row, the drawn tokens the grammar forbids (`invalid`)
    among `drawn`. `enforce` False: nothing is masked, only counted (`--no-constrain`)."""

    def __init__(self, grammar, body: list[int], batch: int, enforce: bool = True) -> None:
        self.grammar, self.enforce = grammar, enforce
        one = grammar.start(1)
        for token in body:
            grammar.advance(one, np.array([token]))
        self.state = one.repeated(batch)
        self.invalid = np.zeros(batch, np.int64)
        self.drawn = 0

    def allowed(self, device: torch.device | str = "cpu") -> Tensor:
        """(batch, vocab) bool: True where the token keeps the sequence decodable."""
        return torch.from_numpy(np.ascontiguousarray(self.grammar.allowed(self.state))).to(device)

    def update(self, ids: Tensor) -> None:
        """ids (batch,): the tokens just drawn."""
        self.invalid += ~self.grammar.advance(self.state, ids.cpu().numpy())
        self.drawn += 1
