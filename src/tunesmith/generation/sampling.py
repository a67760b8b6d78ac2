"""The one sampler, separate from the networks and shared by every autoregressive family.

`sample_sequence` drives any autoregressive family (see `models/base.py`): its stepper is fed the
prefix once, element by element, then each step feeds only the element just drawn; the recurrent state
(or KV cache) carries the past. How one element is drawn from the network's output (temperature,
top-k, top-p) is `models/distributions.py`, through the family's `choose`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tunesmith.models.distributions import SamplingConfig


@torch.no_grad()
def sample_sequence(model, prefix: Tensor, n_steps: int, cfg: SamplingConfig,
                    generator: torch.Generator | None = None, banned: list[int] | None = None,
                    finished: Callable[[Tensor], bool] | None = None, check_every: int = 16) -> Tensor:
    """Continue `prefix` (batch, P >= 1, ...) by up to `n_steps` elements -> (batch, n, ...).

    `model` is an autoregressive family: `model.stepper()` gives the incremental view,
    `model.choose(out, cfg, generator)` draws one element from its output. `banned` ids (categorical
    outputs only: padding, BOS, EOS) are never drawn. `finished(new)` is asked every `check_every`
    steps with everything drawn so far; sampling stops early once it answers True.
    """
    stepper = model.stepper()
    state = stepper.initial_state(prefix.shape[0], prefix.device, generator)
    for t in range(prefix.shape[1]):
        out, state = stepper(prefix[:, t], state)
    new: list[Tensor] = []
    for step in range(n_steps):
        if banned:
            out = out.index_fill(-1, torch.tensor(banned, device=out.device), float("-inf"))
        new.append(model.choose(out, cfg, generator))
        if finished is not None and (step + 1) % check_every == 0 and finished(torch.stack(new, 1)):
            break
        out, state = stepper(new[-1], state)
    return torch.stack(new, 1) if new else prefix[:, :0]
