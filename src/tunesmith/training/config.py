"""YAML recipe -> typed, validated run config (pydantic). Unknown keys are errors.

A recipe has four sections: `data`, `model`, `optim`, `trainer` (see the classes below for every key,
its unit and default). `--set a.b=c` overrides any key; the value is parsed as YAML (`--set optim.lr=1e-3`).

Every key has a type and a range (numbers are finite, counts at least 1, booleans are not numbers);
the first wrong one is one `UserError` sentence naming the key, the value and what is allowed
(`describe_error`). A recipe file that is empty, binary, not UTF-8, or not a YAML mapping is an
error too: an empty recipe never silently trains the defaults.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, model_validator

from tunesmith.core.errors import UserError
from tunesmith.data.config import Count, DataConfig, Float, Int, Name, NonNegative, Positive, Strict
from tunesmith.io.atomic import write_atomic

MAX_RECIPE_BYTES = 1 << 20  # a recipe is a page of YAML; anything bigger is not one
MAX_BATCH = 1 << 20  # examples per step: a larger batch is a typo (and would not fit in memory)
MAX_MODEL_INTEGER = 2**31 - 1  # the largest whole number a model config may hold (sizes, counts, ids)
Device = Literal["auto", "cpu", "cuda", "mps"]
DEVICES = typing.get_args(Device)
SECTIONS = ("data", "model", "optim", "trainer")
_RUN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


def _run_name(name: str) -> str:
    if not _RUN_NAME.fullmatch(name):
        raise ValueError("1-100 letters, digits, '_', '.' or '-', not starting with '.' or '-' "
                         "(it names run folders)")
    return name


Beta = Annotated[Float, Field(ge=0, lt=1)]
MAX_ACCUMULATE = 1024  # micro-batches per optimizer step
MAX_STEPS = 10**9  # optimizer steps: more is a typo


def _auto_or_bool(value: Any) -> Any:
    if value == "auto" or isinstance(value, bool):
        return value
    raise ValueError("true, false or auto")


def _no_huge_integers(config: dict[str, Any]) -> dict[str, Any]:
    """The family checks its own keys (`models/base.py`); here only whole numbers too large for any size,
    count or id are refused, before torch overflows on them or a loop runs for ever."""
    for key, value in config.items():
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_MODEL_INTEGER:
            raise ValueError(f"key {key} is {value}, but a model size or count must be at most {MAX_MODEL_INTEGER}")
    return config


class ModelSection(Strict):
    """A registered model family and its Config fields (see `tunesmith models`)."""

    name: Name = "lstm"
    config: Annotated[dict[str, Any], AfterValidator(_no_huge_integers)] = Field(default_factory=dict)


class OptimConfig(Strict):
    lr: Positive = 2e-3  # AdamW peak learning rate
    weight_decay: NonNegative = 0.0
    betas: tuple[Beta, Beta] = (0.9, 0.999)  # AdamW moment decay rates, each in [0, 1)
    grad_clip: Positive | None = 1.0  # max global gradient norm; None disables clipping
    # examples per forward pass on each process; an optimizer step sees batch_size x accumulate x processes
    batch_size: Annotated[Int, Field(ge=1, le=MAX_BATCH)] = 32
    accumulate: Annotated[Int, Field(ge=1, le=MAX_ACCUMULATE)] = 1  # micro-batches summed into each step
    lr_decay: Annotated[Positive, Field(le=1)] = 1.0  # multiply the learning rate by this at each epoch end
    # learning rate over optimizer steps after the warm-up: constant, or down to lr x min_lr_ratio at the
    # run's last step, linearly or along half a cosine (training/schedule.py)
    schedule: Literal["constant", "linear", "cosine"] = "constant"
    warmup_steps: Annotated[Int, Field(ge=0, le=MAX_STEPS)] = 0  # linear ramp from lr / warmup_steps up to lr
    min_lr_ratio: Annotated[Float, Field(ge=0, le=1)] = 0.0

    @model_validator(mode="after")
    def _one_decay_rule(self) -> OptimConfig:
        if self.schedule != "constant" and self.lr_decay != 1:
            raise ValueError(f"lr_decay ({self.lr_decay}) and schedule {self.schedule!r} both lower the "
                             "learning rate; use one of them (lr_decay: 1 or schedule: constant)")
        return self


class TrainerConfig(Strict):
    max_epochs: Count = 10
    max_steps: Count | None = None  # stop after this many optimizer steps, whatever the epoch
    max_minutes: Positive | None = None  # stop after this much wall-clock training time (demo budgets)
    seed: Annotated[Int, Field(ge=0, le=2**63 - 1)] = 0  # torch seeds are 64-bit
    device: Device = "auto"  # auto: CUDA, else MPS, else CPU (see `check_device`)
    num_threads: Annotated[Int, Field(ge=1, le=1024)] | None = None  # CPU threads; default: 1 for recurrent models
    checkpoint_every: Count = 200  # optimizer steps between checkpoints (plus one at each epoch end)
    log_every: Count = 20  # optimizer steps between training-loss log lines
    valid_batches: Count | None = None  # cap on validation batches per evaluation (None: all)
    progress: bool = True
    workers: Annotated[Int, Field(ge=0, le=64)] = 0  # DataLoader worker processes; 0: load in the training process
    # auto: bf16 autocast on a CUDA GPU that has it, else fp32; fp16 (with a GradScaler) needs CUDA
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    compile: Annotated[bool | str, BeforeValidator(_auto_or_bool)] = "auto"  # torch.compile; auto: on CUDA only
    # a checkpoint (file, run folder or shipped name) whose weights start a new run; see training/init_from.py
    init_from: str | None = None
    init_noise: Annotated[float, Field(ge=0.0, le=10.0)] = 0.5  # init_from: new vocabulary rows' noise x std

    @model_validator(mode="after")
    def _precision_fits_device(self) -> TrainerConfig:
        if self.precision == "fp16" and self.device in ("cpu", "mps"):
            raise ValueError(f"precision fp16 needs a CUDA GPU (its GradScaler), not device {self.device}; "
                             "use bf16 or fp32")
        return self


class RunConfig(Strict):
    """The whole recipe. `name` names run folders and shipped checkpoints."""

    name: Annotated[str, AfterValidator(_run_name)] = "run"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelSection = Field(default_factory=ModelSection)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)


def check_device(name: str) -> None:
    """UserError when the recipe asks for a device this machine lacks (`auto` and `cpu` always work)."""
    if name not in ("cuda", "mps"):
        return
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device 'cuda' was asked for but this machine has no CUDA; use device: auto or cpu")
    mps = getattr(torch.backends, "mps", None)
    if name == "mps" and not (mps and mps.is_available()):
        raise UserError("device 'mps' was asked for but this machine has no Apple MPS; use device: auto or cpu")


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b=c` overrides to a nested dict (values parsed as YAML); returns a new dict."""
    out = yaml.safe_load(yaml.safe_dump(raw)) or {}
    for item in overrides:
        key, sep, value = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise UserError(f"--set expects key=value with a dotted key such as optim.lr=1e-3, got {item!r}")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"--set {key}: {part!r} is not a section")
        node[parts[-1]] = _yaml_value(key, value)
    return out


def _yaml_value(key: str, text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise UserError(f"--set {key}={text}: the value is not valid YAML") from None


def load_config(path: Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML recipe (or start from defaults when `path` is None) and apply overrides."""
    raw = read_recipe(Path(path)) if path is not None else {}
    return parse_config(apply_overrides(raw, overrides or []))


def read_recipe(path: Path) -> dict[str, Any]:
    """The mapping in a YAML recipe file; one UserError for a missing, unreadable, binary, non-UTF-8,
    empty, malformed or non-mapping file (an empty recipe never means "all defaults")."""
    text = _recipe_text(path)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"config file {path} is not valid YAML{where} ({type(error).__name__})") from None
    except RecursionError:
        raise UserError(f"config file {path} is nested too deeply to be a recipe") from None
    if raw is None:
        raise UserError(f"config file {path} is empty; a recipe needs its sections ({', '.join(SECTIONS)}), "
                        "see the examples in configs/")
    if not isinstance(raw, dict):
        raise UserError(f"config file {path} holds a YAML {_yaml_kind(raw)}, but a recipe must be a mapping "
                        f"of sections ({', '.join(SECTIONS)})")
    return raw


def _recipe_text(path: Path) -> str:
    """The text of a recipe file: at most MAX_RECIPE_BYTES of UTF-8 without NUL bytes."""
    if not path.is_file():
        raise UserError(f"config file {path} does not exist" if not path.exists() else
                        f"config file {path} is not a regular file")
    try:
        if path.stat().st_size > MAX_RECIPE_BYTES:
            raise UserError(f"config file {path} is larger than {MAX_RECIPE_BYTES >> 20} MiB: not a recipe")
        data = path.read_bytes()
    except OSError as error:
        raise UserError(f"cannot read config file {path}: {error.strerror or type(error).__name__}") from None
    if b"\0" in data:
        raise UserError(f"config file {path} is a binary file, not a YAML recipe")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UserError(f"config file {path} is not UTF-8 text (bad byte at offset {error.start})") from None


def _yaml_kind(value: Any) -> str:
    return "list" if isinstance(value, list) else f"scalar ({_show(value)})"


def parse_config(raw: dict[str, Any]) -> RunConfig:
    """Validate a nested dict as a RunConfig; the first problem becomes one UserError sentence."""
    if not isinstance(raw, dict):
        raise UserError(f"a recipe must be a mapping of sections ({', '.join(SECTIONS)}), not {_yaml_kind(raw)}")
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as error:
        raise UserError(describe_error(error.errors()[0])) from None


# pydantic error type -> what is allowed, completed from the error's context.
_ALLOWED = {
    "greater_than": "greater than {gt}", "greater_than_equal": "at least {ge}",
    "less_than": "less than {lt}", "less_than_equal": "at most {le}", "finite_number": "a finite number",
    "int_type": "a whole number", "int_parsing": "a whole number", "int_from_float": "a whole number",
    "int_parsing_size": "a whole number", "float_type": "a number", "float_parsing": "a number",
    "bool_type": "true or false", "bool_parsing": "true or false", "string_type": "a string",
    "string_too_short": "a non-empty string", "literal_error": "one of {expected}",
    "dict_type": "a mapping of keys to values", "model_type": "a section (a mapping of keys to values)",
    "model_attributes_type": "a section (a mapping of keys to values)", "tuple_type": "a list",
    "too_long": "a list of at most {max_length} values", "too_short": "a list of at least {min_length} values",
}


def describe_error(error: dict[str, Any]) -> str:
    """One sentence for a pydantic error on a RunConfig: the key, the value given, what is allowed."""
    loc, kind = tuple(error["loc"]), error["type"]
    if kind == "extra_forbidden":
        return f"unknown config key {_key(loc)}; {_allowed_keys(loc[:-1])}"
    if kind == "missing" and loc and isinstance(loc[-1], int):  # a tuple given too few values
        size = len(typing.get_args(_section(loc[:-1])[0]))
        return f"config key {_key(loc[:-1])} is {_show(error['input'])}, but it must be a list of {size} values"
    if kind == "value_error" and isinstance(error["input"], dict):  # a rule across the keys of a section
        return f"config section {_key(loc) or '(top level)'}: {error['ctx']['error']}"
    ctx = {k: _number(v) for k, v in error.get("ctx", {}).items()}
    allowed = str(ctx["error"]) if kind == "value_error" else _ALLOWED.get(kind, error["msg"].lower()).format(**ctx)
    if _nullable(loc):
        allowed += " (or null)"
    return f"config key {_key(loc)} is {_show(error['input'])}, but it must be {allowed}"


def _key(loc: tuple) -> str:
    """('optim', 'betas', 0) -> 'optim.betas[0]'."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def _show(value: Any) -> str:
    """A value as the user wrote it in YAML: null, true, 'text', 1e-3; long values cut."""
    if isinstance(value, str):
        text = repr(value)
    else:
        text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()
    return text if len(text) <= 60 else text[:57] + "..."


def _number(value: Any) -> Any:
    return f"{value:g}" if isinstance(value, float) else value


def _section(loc: tuple) -> tuple[Any, Any]:
    """(the annotation of the key at `loc`, its FieldInfo); (RunConfig, None) for the top level and
    (None, None) for a key the recipe classes do not define."""
    model, field = RunConfig, None
    for part in loc:
        fields = getattr(model, "model_fields", {})  # a config class, or a plain type with no fields
        if part not in fields:
            return None, None
        field = fields[part]
        model = field.annotation
    return model, field


def _nullable(loc: tuple) -> bool:
    _, field = _section(loc)
    return field is not None and type(None) in typing.get_args(field.annotation)


def _allowed_keys(loc: tuple) -> str:
    model, _ = _section(loc)
    if not (isinstance(model, type) and issubclass(model, Strict)):
        return "see the recipes in configs/"
    where = f"in {_key(loc)}" if loc else "at the top level"
    return f"allowed {where}: {', '.join(model.model_fields)}"


def dump_config(config: RunConfig, path: Path) -> None:
    """Write the resolved config as YAML (what the run actually used), atomically: a reader or a
    rerun after a kill or a full disk sees the old file or the new one, never an empty one."""
    text = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    write_atomic(path, text.encode("utf-8"))
