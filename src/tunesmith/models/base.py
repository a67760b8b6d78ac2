"""The model contract: what every family declares and provides, written once.

A family is one file with one `MusicModel` subclass, registered by name in `models/__init__.py`:

Declares (class attributes)
    name         registry name
    Config       a dataclass, the `__init__` argument; `validate_config` checks its values
    objective    "likelihood" | "adversarial" (training/objectives.py picks the optimizer set-up)
    data_kind    what batches it eats: "tokens" | "frames" | "bars" | ...
    likelihood   None, or `Likelihood(kind, unit)`: "exact" or "bound", per "token" or "frame"
    generation   "autoregressive" | "one-shot" | None (the family does not generate)
    options      the generation options it honours beyond n / bars / steps / seed / primer
                 (a subset of `GENERATION_OPTIONS`); `generation_options()` may narrow them per config

Provides
    defaults(), debug_config(), debug_dims(), example_batch()    tests and the registry
    loss(batch) -> {"loss": scalar, ...}                        training
    piece_history(config) -> PieceHistory | None                frames items that also carry the piece so far
                                                                (data/piece_history.py; default None)
    decays(param), learning_rate_scale(param)                   the optimizer's per-parameter settings
    log_likelihood(array) -> (nats, units)                      when `likelihood` is set: one piece as its
                                                                representation encodes it
    autoregressive: stepper() and choose(out, sampling, generator): the network's incremental view
        (`initial_state(batch, device)`, `forward(x, state) -> (out, state)`, fed one element at a time)
        and how one element is drawn from its output; `generation/sampling.py` drives every such family
    one-shot: sample(plan, generator) -> array batch (see each family)

The CLI refuses an option a family does not declare with one sentence (`check_options`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from torch import Tensor, nn

from tunesmith.core.errors import UserError
from tunesmith.data.piece_history import PieceHistory
from tunesmith.models.distributions import SamplingConfig

# Generation options a family may honour (the CLI flag each comes from).
GENERATION_OPTIONS: dict[str, str] = {
    "temperature": "--temperature",
    "top_k": "--top-k",
    "top_p": "--top-p",
    "min_p": "--min-p",
    "chords": "--chords",
    "primer": "--primer",
    "candidates": "--candidates",
}
# What autoregressive token families honour (candidates: best-of-M endings, for countdown representations).
TOKEN_OPTIONS = frozenset({"temperature", "top_k", "top_p", "min_p", "primer", "candidates"})


@dataclass
class SamplePlan:
    """What a one-shot family's `sample` is asked for."""

    n: int  # pieces
    bars: int  # new bars after the context
    context: np.ndarray | None = None  # the primer's last bars, as the representation encodes them
    chords: list[str] | None = None  # chord names for the new bars, cycled
    sampling: SamplingConfig = field(default_factory=SamplingConfig)


@dataclass(frozen=True)
class Likelihood:
    """What `log_likelihood` returns: an exact log-probability or a bound, in nats per `unit`."""

    kind: str  # "exact" | "bound"
    unit: str  # "token" | "frame"


class MusicModel(nn.Module):
    """Base class of every registered family; see the module docstring for the contract."""

    name: ClassVar[str]
    Config: ClassVar[type]
    objective: ClassVar[str] = "likelihood"
    data_kind: ClassVar[str]
    likelihood: ClassVar[Likelihood | None] = None
    generation: ClassVar[str | None] = None
    options: ClassVar[frozenset[str]] = frozenset()
    cpu_threads: ClassVar[int | None] = None  # None: every core
    loss_weights: ClassVar[bool] = False  # whether `loss` reads per-target weights, batch["weights"]

    # ---- registry and tests ---------------------------------------------------------------------

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Config values the registered name implies, applied before the user's."""
        return {}

    @classmethod
    def debug_config(cls) -> dict[str, Any]:
        """A tiny config for the shared CPU test suite."""
        return {}

    @classmethod
    def debug_dims(cls) -> dict[str, Any]:
        """Data dims for the shared test suite (normally they come from the representation)."""
        return {}

    @classmethod
    def validate_config(cls, config: Any) -> None:
        """Raise UserError (one sentence naming the key) for a config value the family cannot use."""

    @classmethod
    def piece_history(cls, config: Any) -> PieceHistory | None:
        """Training: whether the family's items (frames data) must also carry a summary of the piece before them,
        and which (`data/piece_history.py`); asked from the validated config before any data is loaded, so a
        data config that cannot give it is one sentence. Default None: plain windows."""
        return None

    def example_batch(self, batch_size: int = 2) -> dict[str, Tensor]:
        """A random batch of the shape `loss` expects."""
        raise NotImplementedError

    def loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        raise NotImplementedError

    # ---- likelihood and generation ----------------------------------------------------------------

    def log_likelihood(self, array: np.ndarray) -> tuple[float, int]:
        """(total log-probability in nats, number of units) of one encoded piece."""
        raise UserError(f"a {self.name} model defines no likelihood")

    def decays(self, param: Tensor) -> bool:
        """Whether weight decay applies to `param`: matrices and embeddings (2-D and up) by default, never
        biases or norm gains (nanoGPT's rule); a family overrides it for tensors decay would harm."""
        return param.dim() >= 2

    def learning_rate_scale(self, param: Tensor) -> float:
        """`param`'s learning rate relative to the recipe's `optim.lr` (the schedule scales both alike); 1 by
        default, more for e.g. a small head that starts from scratch beside a trained network."""
        return 1.0

    def set_progress(self, progress: float) -> None:
        """The share of training done (epoch / max_epochs), before each epoch: for schedules inside a
        model such as teacher forcing; default: nothing depends on it."""

    def start_training(self) -> None:
        """Once, before the first step of a new training run (not of a resumed one, whose checkpoint holds
        what this prepared): e.g. load pretrained parts the config names; default: nothing to prepare."""

    def grown_weight(self, name: str, weight: Tensor, shape: tuple[int, ...]) -> Tensor | None:
        """`trainer.init_from`: the checkpoint's `weight` made to fit this model's `name` of `shape`, for a
        family whose config can widen a trained model (e.g. a new condition input), or None when it
        cannot (the default; vocabulary growth is handled for every token family in training/init_from)."""
        return None

    def generation_options(self) -> frozenset[str]:
        """The options this instance honours (a config may narrow the class's `options`)."""
        return self.options


def check_options(model: MusicModel, requested: dict[str, Any]) -> None:
    """UserError for the first requested option (a non-None value) that `model` does not honour."""
    if model.generation is None:
        raise UserError(f"the {model.name} family does not generate music (it serves metrics)")
    supported = model.generation_options()
    for option, value in requested.items():
        if value is not None and option not in supported:
            allowed = ", ".join(GENERATION_OPTIONS[o] for o in sorted(supported)) or "none"
            raise UserError(f"the {model.name} family does not support {GENERATION_OPTIONS[option]} "
                            f"(it supports: {allowed})")


def check_choice(config: Any, key: str, allowed: tuple[str, ...]) -> None:
    """UserError unless `config.key` is one of `allowed`."""
    value = getattr(config, key)
    if value not in allowed:
        raise UserError(f"model config {key} must be one of {', '.join(allowed)}, got {value!r}")


MAX_SIZE = 65_536  # widths, vocabularies, lengths: far beyond any model this toolkit trains
MAX_DEPTH = 64  # layers, ensemble members, updates per batch: each costs a full pass


def check_positive(config: Any, *keys: str, minimum: float = 1, maximum: float | None = None) -> None:
    """UserError unless each `config.key` is a number in [minimum, maximum]; whole numbers are capped at
    `MAX_SIZE` unless `maximum` says otherwise (a typo of 1e9 units is one sentence, not an hour of
    allocation)."""
    for key in keys:
        value = getattr(config, key)
        top = maximum if maximum is not None else (MAX_SIZE if isinstance(value, int) else float("inf"))
        if isinstance(value, bool) or not isinstance(value, int | float) or not minimum <= value <= top:
            limits = f">= {minimum}" if top == float("inf") else f"in [{minimum}, {top}]"
            raise UserError(f"model config {key} must be a number {limits}, got {value!r}")


def check_fraction(config: Any, *keys: str) -> None:
    """UserError unless each `config.key` is a number in [0, 1]."""
    for key in keys:
        value = getattr(config, key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise UserError(f"model config {key} must be a number in [0, 1], got {value!r}")


def check_types(config: Any) -> None:
    """UserError for a config value whose type is not the field's declared type (int, float, bool, str)."""
    for spec in dataclasses.fields(config):
        value, kind = getattr(config, spec.name), spec.type
        expected = {"int": int, "float": (int, float), "bool": bool, "str": str}.get(str(kind))
        if expected is None:
            continue
        wrong = not isinstance(value, expected) or (isinstance(value, bool) and kind != "bool")
        if wrong:
            raise UserError(f"model config {spec.name} must be of type {kind}, got {value!r}")
