"""`tunesmith demo` / `make demo`: the whole path on a bundled corpus in a few minutes of CPU.

Train a small LSTM (configs/demo.yaml), generate four pieces, write MIDI + WAV + PNG, and say how to
listen. Everything lands in one folder; the run folder inside it holds the checkpoint and its logs.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from tunesmith.core.errors import UserError
from tunesmith.resources import shipped_recipe


def run_demo(out: Path) -> list[Path]:
    """Train, generate and render into `out`; returns the files written."""
    from tunesmith.generation.generate import GenerateRequest, generate_command
    from tunesmith.models.checkpoint import load_checkpoint
    from tunesmith.models.distributions import SamplingConfig
    from tunesmith.training.config import load_config
    from tunesmith.training.loop import train

    recipe = shipped_recipe("demo")
    if recipe is None:
        raise UserError("the demo recipe (demo.yaml) is missing from this tunesmith installation")
    started = time.perf_counter()
    config = load_config(recipe)
    run_dir = out / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    print(f"[demo] training {config.model.name} on corpus {config.data.source!r} "
          f"({config.data.representation} tokens, at most {config.trainer.max_minutes} min)")
    train(config, run_dir)
    best = run_dir / "checkpoints" / "best.ckpt"
    metrics = load_checkpoint(best).get("metrics", {})
    request = GenerateRequest(n=4, bars=16, seed=1, audio="wav", plot=True,
                              sampling=SamplingConfig(temperature=0.9, top_p=0.95))
    written = list(generate_command(str(best), out, request, stem="demo"))
    _report(out, run_dir, written, metrics, time.perf_counter() - started)
    return written


def _report(out: Path, run_dir: Path, written: list[Path], metrics: dict, seconds: float) -> None:
    print(f"[demo] done in {seconds / 60:.1f} min; validation: "
          + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
    for path in written:
        print(f"  {path}")
    print(f"  {run_dir / 'checkpoints' / 'best.ckpt'} (the trained model)")
    wavs = [p for p in written if p.suffix == ".wav"]
    if wavs:
        print(f"[demo] listen: play {wavs[0]} with any audio player (e.g. `aplay {wavs[0]}`), "
              f"or open the .mid files in your DAW; the .png files show each piece as a piano roll.")
    print(f"[demo] more pieces: tunesmith generate {run_dir / 'checkpoints' / 'best.ckpt'} "
          f"--out {out / 'more'} --n 4 --audio --plot")
