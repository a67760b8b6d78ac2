"""Self-describing checkpoints: the one writer and the one loader (models sit below training and
generation, so both read checkpoints from here).

A checkpoint is one dict (only tensors, numbers, strings, lists and dicts, so the safe loader accepts it):
    format          "tunesmith-checkpoint/1"
    model           {"name": registry name, "config": the model Config as a dict}
    representation  Representation.to_dict() (name, config, learned vocabulary)
    weights         model state_dict
    optimizer, rng, position    for resuming (absent from shipped, slimmed checkpoints)
    step, epoch     optimizer steps done; epoch in progress
    provenance      data source, split rule and hash of the training piece ids
    metrics         the latest validation figures
    run_config      the resolved recipe

`load_model` checks everything before building anything: keys, config (typed, validated by the
family), representation, that the representation's data dims match the model config, tensor names
and shapes, and finite weights; each problem is one UserError sentence.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tunesmith.core.errors import UserError
from tunesmith.io.atomic import write_atomic
from tunesmith.models import build_model, data_dims, make_config
from tunesmith.models.base import MusicModel
from tunesmith.representations import representation_from_dict
from tunesmith.representations.base import Representation
from tunesmith.resources import checkpoint_dirs

FORMAT = "tunesmith-checkpoint/1"
SUFFIX = ".ckpt"
REQUIRED_KEYS = ("model", "representation", "weights")
SAMPLING_DEFAULT_KEYS = ("temperature", "top_k", "top_p", "min_p")


@dataclass
class LoadedModel:
    """A checkpoint's model (eval mode), its representation and the raw payload."""

    model: MusicModel
    representation: Representation
    checkpoint: dict[str, Any]
    path: Path

    @property
    def name(self) -> str:
        return self.checkpoint["model"]["name"]

    @property
    def sampling_defaults(self) -> dict[str, Any]:
        """Sampling options chosen for this checkpoint (`generation_defaults`, e.g. a temperature picked on
        its corpus: see the checkpoint's .md); used when a user asks for none. {} when it has none."""
        defaults = self.checkpoint.get("generation_defaults") or {}
        return {k: v for k, v in defaults.items() if k in SAMPLING_DEFAULT_KEYS}


def save_checkpoint(payload: dict[str, Any], path: Path) -> None:
    """Write `payload` to `path` atomically (temp file, fsync, rename), with the usual permissions."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **payload}, buffer)
    write_atomic(path, buffer.getvalue())


def set_generation_defaults(path: Path | str, **sampling: float | int | None) -> None:
    """Store sampling defaults in a checkpoint file (atomically); None removes a key. Refuses options the
    family does not honour, and values `SamplingConfig` refuses."""
    from tunesmith.models.base import check_options
    from tunesmith.models.distributions import SamplingConfig, check_temperature

    unknown = sorted(set(sampling) - set(SAMPLING_DEFAULT_KEYS))
    if unknown:
        raise UserError(f"{unknown[0]!r} is not a sampling option; known: {', '.join(SAMPLING_DEFAULT_KEYS)}")
    loaded = load_model(path)
    defaults = {k: v for k, v in {**loaded.sampling_defaults, **sampling}.items() if v is not None}
    check_temperature(defaults.get("temperature"))
    SamplingConfig(**defaults)
    check_options(loaded.model, defaults)
    payload = {k: v for k, v in loaded.checkpoint.items() if k != "format"}  # save_checkpoint writes it
    save_checkpoint({**payload, "generation_defaults": defaults}, loaded.path)


def load_checkpoint(path: Path | str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely; a missing, truncated or foreign file raises one clear UserError."""
    path = resolve_checkpoint(path)
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive: say which of two faults this is
        with open(path, "rb") as file:
            started = file.read(2) == b"PK"
        fault = "damaged or cut short" if started else "not a PyTorch checkpoint file"
        raise UserError(f"{path} is not a readable tunesmith checkpoint ({fault})")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for truncated / foreign files
        raise UserError(f"{path} is not a readable tunesmith checkpoint ({_short(error)})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{path} is not a tunesmith checkpoint (no '{FORMAT}' marker)")
    return payload


def load_model(path: Path | str, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild model and representation from a checkpoint file, run folder or shipped name."""
    path = resolve_checkpoint(path)
    payload = load_checkpoint(path, map_location=device)
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing or not isinstance(payload["model"], dict) or "name" not in payload["model"]:
        raise UserError(f"{path} lacks the checkpoint entry {(missing or ['model.name'])[0]!r}")
    representation = _representation(payload, path)
    name, config = payload["model"]["name"], payload["model"].get("config", {})
    if not isinstance(config, dict):
        raise UserError(f"{path}: the model config is not a mapping")
    model_config = make_config(name, config, {})
    _check_dims(model_config, representation, path)
    model = build_or_explain(name, model_config, f"{path} (its stored config)")
    _load_weights(model, payload["weights"], path)
    return LoadedModel(model.to(device).eval(), representation, payload, path)


def _representation(payload: dict[str, Any], path: Path) -> Representation:
    try:
        return representation_from_dict(payload["representation"])
    except UserError as error:
        raise UserError(f"{path}: {error}") from None
    except Exception as error:  # a damaged representation entry
        raise UserError(f"{path}: its representation entry is damaged ({_short(error)})") from None


def build_or_explain(name: str, config: Any, source: str) -> MusicModel:
    """The family's model from a validated config; sizes torch cannot allocate (or that overflow) are a
    UserError naming `source` (where the config came from: a checkpoint, a recipe)."""
    try:
        return build_model(name, config)
    except (RuntimeError, OverflowError, MemoryError, TypeError, ValueError) as error:
        raise UserError(f"{source}: a {name} model of this config cannot be built ({_short(error)}); "
                        "make it smaller") from None


def _check_dims(config: Any, representation: Representation, path: Path) -> None:
    """The representation's data dims (vocabulary size, bar length) must be those the model was built for."""
    for key, value in data_dims(representation).items():
        if hasattr(config, key) and getattr(config, key) != value:
            raise UserError(f"{path}: the model was built for {key}={getattr(config, key)} but its stored "
                            f"representation gives {key}={value}; the checkpoint is inconsistent")


def _load_weights(model: torch.nn.Module, weights: Any, path: Path) -> None:
    if not isinstance(weights, dict):
        raise UserError(f"{path}: its weights entry is not a state dict")
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in weights:
            raise UserError(f"{path}: weight {key!r} is missing for a {model.name} model of this config")
        if not isinstance(weights[key], torch.Tensor) or weights[key].shape != tensor.shape:
            got = tuple(weights[key].shape) if isinstance(weights[key], torch.Tensor) else type(weights[key])
            raise UserError(f"{path}: weight {key!r} has shape {got}, the config needs {tuple(tensor.shape)}")
        if weights[key].is_floating_point() and not bool(torch.isfinite(weights[key]).all()):
            raise UserError(f"{path}: weight {key!r} holds NaN or infinite values")
    extra = sorted(set(weights) - set(expected))
    if extra:
        raise UserError(f"{path}: weight {extra[0]!r} does not belong to a {model.name} model")
    model.load_state_dict(weights)


def resolve_checkpoint(name_or_path: Path | str) -> Path:
    """A checkpoint path, a run folder (its best, else last checkpoint) or the name of a shipped one."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    for name in ("best", "last"):
        if path.is_dir() and (path / "checkpoints" / f"{name}{SUFFIX}").is_file():
            return path / "checkpoints" / f"{name}{SUFFIX}"
    for folder in checkpoint_dirs():
        candidate = folder / f"{path.name.removesuffix(SUFFIX)}{SUFFIX}"
        if candidate.is_file() and not path.is_dir():
            return candidate
    raise UserError(f"no checkpoint {name_or_path}: give a .ckpt file, a run folder, or a shipped name "
                    f"({', '.join(shipped_names()) or 'none shipped'})")


def shipped_names() -> list[str]:
    """Names of the checkpoints shipped with tunesmith."""
    return sorted({p.stem for d in checkpoint_dirs() for p in d.glob(f"*{SUFFIX}")})


def file_hash(path: Path) -> str:
    """First 16 hex digits of the file's BLAKE2b digest (names a checkpoint in provenance records)."""
    digest = hashlib.blake2b(digest_size=8)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _short(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{error.__class__.__name__}: {text[0][:120]}" if text else error.__class__.__name__
