"""`tunesmith demo` / `make demo`: the whole path on a bundled corpus in a few minutes of CPU.

Train a small LSTM on the Bach chorale melodies, every piece moved to C major / A minor (the shipped
`demo` recipe: key-normalised data lets a 3-minute model learn scales instead of spreading itself over
twelve keys), generate four pieces with conservative sampling, write MIDI + WAV + PNG, and beside them
two pieces from the shipped `lstm-bach` (an hour of training on the four-voice chorales), in their own
folder. The demo measures what it made against the real melodies (scale consistency, mean interval) and
says which files are which and what to listen for.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tunesmith.core.errors import UserError
from tunesmith.resources import shipped_recipe

SAMPLING = {"temperature": 0.8, "top_p": 0.9}  # conservative: a short-trained model's tails are noise


def run_demo(out: Path, say: Callable[[str], None] = print) -> list[Path]:
    """Train, generate and render into `out`, telling the user what happens with `say`; returns the
    files written."""
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
    _clear_previous_demo(run_dir, config.name)
    say(f"[demo] training {config.model.name} on the {config.data.source!r} melodies "
        f"({config.data.representation}, key-normalised: {config.data.normalize_key}), "
        f"at most {config.trainer.max_minutes} min")
    train(config, run_dir)
    best = run_dir / "checkpoints" / "best.ckpt"
    metrics = load_checkpoint(best).get("metrics", {})
    request = GenerateRequest(n=4, bars=16, seed=1, audio="wav", plot=True, sampling=SamplingConfig(**SAMPLING))
    written = list(generate_command(str(best), out, request, stem="demo"))
    shipped = GenerateRequest(n=2, bars=8, seed=1, audio="wav", plot=True, sampling=SamplingConfig(**SAMPLING))
    written += list(generate_command("lstm-bach", out / "shipped-lstm-bach", shipped, stem="lstm-bach"))
    for line in _report(out, run_dir, written, metrics, config, time.perf_counter() - started):
        say(line)
    return written


def _clear_previous_demo(run_dir: Path, name: str) -> None:
    """Remove the run folder an earlier demo left in `run_dir`; anything else there is the user's and
    stops the demo with one sentence instead of being deleted."""
    if not run_dir.exists():
        return
    config = run_dir / "config.yaml"
    if not (run_dir.is_dir() and config.is_file() and f"name: {name}" in config.read_text(errors="replace")):
        raise UserError(f"{run_dir} exists and is not an earlier demo run; choose another --out for the demo")
    shutil.rmtree(run_dir)


def _melody_figures(paths: list[Path]) -> tuple[float, float]:
    """Mean scale consistency and mean absolute interval (semitones) of the MIDI files' notes in order."""
    from tunesmith.core.score import note_table
    from tunesmith.evaluation.metrics import scale_consistency
    from tunesmith.io.midi import read_midi

    scores = [read_midi(p) for p in paths]
    steps = [np.abs(np.diff(note_table(s)["pitch"].astype(int))) for s in scores]
    intervals = np.concatenate(steps) if steps else np.zeros(0)
    return float(np.mean([scale_consistency(s) for s in scores])), float(intervals.mean()) if len(intervals) else 0.0


def _real_figures(config) -> tuple[float, float]:
    """The same figures for 40 real training melodies, as the model saw them."""
    from tunesmith.core.score import bars_after, note_table
    from tunesmith.data.augment import to_common_key
    from tunesmith.data.sources import load_scores
    from tunesmith.evaluation.metrics import scale_consistency
    from tunesmith.representations import get_representation

    rep = get_representation(config.data.representation, **config.data.representation_config)
    melodies = [rep.canonical(bars_after(to_common_key(s), 16)) for _, s in load_scores(config.data.source, 40)]
    steps = np.concatenate([np.abs(np.diff(note_table(m)["pitch"].astype(int))) for m in melodies])
    return float(np.mean([scale_consistency(m) for m in melodies])), float(steps.mean())


def _report(out: Path, run_dir: Path, written: list[Path], metrics: dict, config, seconds: float) -> list[str]:
    """What the demo tells the user at the end: figures, which files are which, what to listen for."""
    figures = ", ".join(f"{k} {v:.3f}" for k, v in metrics.items())
    lines = [f"[demo] done in {seconds / 60:.1f} min; validation: {figures}"]
    ours = sorted(p for p in written if p.suffix == ".mid" and p.parent == out)
    scale, interval = _melody_figures(ours)
    real_scale, real_interval = _real_figures(config)
    lines.append(f"[demo] the trained model's 4 melodies: scale consistency {scale:.2f} (real Bach melodies "
         f"{real_scale:.2f}), mean step {interval:.1f} semitones (real {real_interval:.1f})")
    lines.append(f"[demo] {out}/demo_*.wav|.mid|.png: what the model you just trained wrote (16 bars each, in C "
         "major or A minor, one melody line): listen for stepwise motion in one key and phrases of 2-4 bars")
    lines.append(f"[demo] {out}/shipped-lstm-bach/: the shipped lstm-bach (2x512 LSTM, an hour of training on the "
         "four-voice chorales): listen for four voices moving together in chorale style")
    wavs = [p for p in written if p.suffix == ".wav"]
    if wavs:
        lines.append(f"[demo] play {wavs[0]} with any audio player (e.g. `aplay {wavs[0]}`), open the .mid "
                     "files in your DAW, or look at the .png piano rolls")
    lines.append(f"[demo] more pieces: tunesmith generate {run_dir / 'checkpoints' / 'best.ckpt'} "
                 f"--out {out / 'more'} --n 4 --audio --plot")
    return lines
