"""Latent-space tools for the VAE families (`lstm-vae`, `conv-vae`): interpolation and reconstruction.

- `interpolate(checkpoint, a, b, steps, out_dir)`: encode the first window of two MIDI pieces to their
  posterior means, walk from one to the other in `steps` points (spherical by default: slerp keeps the
  norm that prior draws have; `spherical=False`: straight line), decode each point and write
  `interp_00.mid` .. `interp_{steps-1}.mid` (both end points included) and a `generation.json` sidecar.
- `reconstruct(checkpoint, midi, out)`: the piece's first window through encoder and decoder.

Pieces go in as the model's representation holds them (its grid, range, melody). A model trained on
key-normalised data (`data.normalize_key`) gets its inputs moved to C major / A minor first, as in
training; a reconstruction is moved back to the input's key, an interpolation stays in the common key
(between two keys there is no single key to go back to). Decoding is greedy (the most likely token or
unit) unless a `SamplingConfig` asks otherwise, so a file repeats under the same checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from symusic import Score

from tunesmith.core.errors import SkipFile, UserError
from tunesmith.models.checkpoint import LoadedModel, load_model
from tunesmith.models.distributions import SamplingConfig
from tunesmith.models.vae import slerp

GREEDY = SamplingConfig(greedy=True)


def load_latent_model(checkpoint: str | Path) -> LoadedModel:
    """A checkpoint whose family has a latent space (`encode_pieces` / `decode_latents`); else UserError."""
    loaded = load_model(checkpoint)
    if not (hasattr(loaded.model, "encode_pieces") and hasattr(loaded.model, "decode_latents")):
        raise UserError(f"{checkpoint}: a {loaded.name} model has no latent space to encode pieces into; "
                        "use a lstm-vae or conv-vae checkpoint")
    return loaded


def _key_shift(loaded: LoadedModel, score: Score) -> int:
    """Semitones that move `score` to the common key when the model was trained key-normalised, else 0."""
    if not loaded.checkpoint.get("provenance", {}).get("normalize_key"):
        return 0
    from tunesmith.data.augment import estimate_key

    key = estimate_key(score)
    if key is None:
        return 0
    tonic, mode = key
    return (((0 if mode == "major" else 9) - tonic + 6) % 12) - 6


def encode_midi(loaded: LoadedModel, path: Path) -> tuple[np.ndarray, int]:
    """A MIDI file -> (the model representation's array, in the training key, the shift applied)."""
    from tunesmith.core.score import transpose
    from tunesmith.io.midi import read_midi

    if not Path(path).is_file():
        raise UserError(f"{path} does not exist")
    try:
        score = read_midi(Path(path))
        shift = _key_shift(loaded, score)
        array = loaded.representation.encode(transpose(score, shift) if shift else score)
    except SkipFile as reason:
        raise UserError(f"{path} cannot be read as this model's {loaded.representation.name}: {reason}") from None
    if not len(array) or not np.asarray(array).any():
        raise UserError(f"{path} holds no notes this model's {loaded.representation.name} can keep")
    return array, shift


def window_length(loaded: LoadedModel) -> int:
    """Tokens or frames one latent code stands for (the model's window)."""
    return int(loaded.model.config.window)


def latent_path(a: torch.Tensor, b: torch.Tensor, steps: int, spherical: bool = True) -> torch.Tensor:
    """`steps` latents (steps, D) from a to b (D,), both included: slerp or linear at t = i / (steps - 1)."""
    if steps < 2:
        raise UserError(f"--steps must be at least 2 (both end points), got {steps}")
    ts = [i / (steps - 1) for i in range(steps)]
    return torch.stack([slerp(a, b, t) if spherical else (1 - t) * a + t * b for t in ts])


def decode_points(loaded: LoadedModel, z: torch.Tensor, sampling: SamplingConfig | None = None,
                  seed: int = 0) -> list[Score]:
    """Latents (n, D) -> n Scores of one window each."""
    generator = torch.Generator().manual_seed(seed)
    arrays = loaded.model.decode_latents(z, window_length(loaded), sampling or GREEDY, generator)
    return [loaded.representation.decode(a) for a in arrays]


def interpolate(checkpoint: str | Path, a_mid: Path, b_mid: Path, steps: int, out_dir: Path,
                spherical: bool = True, sampling: SamplingConfig | None = None) -> list[Path]:
    """Write `steps` MIDI files walking the latent space from piece A to piece B; returns their paths
    (the sidecar `generation.json` is written beside them)."""
    from tunesmith.io.midi import write_midi

    loaded = load_latent_model(checkpoint)
    if steps < 2:
        raise UserError(f"--steps must be at least 2 (both end points), got {steps}")
    arrays = [encode_midi(loaded, path)[0] for path in (a_mid, b_mid)]
    mu = loaded.model.encode_pieces(arrays)
    path = latent_path(mu[0], mu[1], steps, spherical)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    width = max(2, len(str(steps - 1)))
    written = [write_midi(score, out_dir / f"interp_{i:0{width}d}.mid")
               for i, score in enumerate(decode_points(loaded, path, sampling))]
    _sidecar(loaded, out_dir, written, {"command": "interpolate", "a": str(a_mid), "b": str(b_mid),
                                        "steps": steps, "spherical": spherical,
                                        "sampling": _sampling_record(sampling)})
    return written


def reconstruct(checkpoint: str | Path, midi: Path, out: Path, sampling: SamplingConfig | None = None) -> Path:
    """Write the first window of `midi` as the model reconstructs it (encode to the posterior mean,
    decode), in the input's key; returns the path."""
    from tunesmith.core.score import transpose
    from tunesmith.io.midi import write_midi

    loaded = load_latent_model(checkpoint)
    array, shift = encode_midi(loaded, midi)
    (score,) = decode_points(loaded, loaded.model.encode_pieces([array]), sampling)
    out = write_midi(transpose(score, -shift) if shift else score, Path(out))
    _sidecar(loaded, out.parent, [out], {"command": "reconstruct", "input": str(midi), "key_shift": shift,
                                         "sampling": _sampling_record(sampling)})
    return out


def _sampling_record(sampling: SamplingConfig | None) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(sampling or GREEDY)


def _sidecar(loaded: LoadedModel, folder: Path, files: list[Path], options: dict[str, Any]) -> Path:
    """`generation.json` like `tunesmith generate` writes: checkpoint, model, representation, options."""
    from tunesmith.generation.generate import GenerateRequest
    from tunesmith.generation.outputs import provenance, write_sidecar

    record = provenance(loaded, GenerateRequest(n=len(files)))
    record["options"] = options  # what this command was asked, in place of generate's options
    return write_sidecar(folder, record, files)
