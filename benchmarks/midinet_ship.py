"""Ship a MidiNet run's checkpoint: a slim inference copy (`export_for_inference`) with chosen generation
settings written into its model config (`spread_scale`, `redraws`, `hold_bias`, `off_key_penalty`,
`leap_penalty`, `scale_penalty`, `min_recent_pitches`,
`interval_prior`, `profile_prior`, `profile_feedback`: `models/midinet_nets.MidiNetConfig`) and sampling
defaults (`set_generation_defaults`).

Usage: python benchmarks/midinet_ship.py RUN_CKPT DST [--set key=value ...] [--temperature T]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tunesmith.models.checkpoint import load_checkpoint, load_model, save_checkpoint, set_generation_defaults
from tunesmith.training.checkpoint import export_for_inference

GENERATION_SETTINGS = {"spread_scale": float, "redraws": int, "hold_bias": float, "off_key_penalty": float,
                       "leap_penalty": float, "scale_penalty": float, "min_recent_pitches": int,
                       "interval_prior": float, "profile_prior": float,
                       "profile_feedback": float}


def ship(source: Path, destination: Path, settings: dict[str, str], temperature: float | None) -> None:
    """Export `source` to `destination` with `settings` (generation settings only) and `temperature`."""
    unknown = sorted(set(settings) - set(GENERATION_SETTINGS))
    if unknown:
        raise SystemExit(f"{unknown[0]} is not a generation setting; known: {', '.join(GENERATION_SETTINGS)}")
    export_for_inference(source, destination)
    payload = load_checkpoint(destination)
    config = {**payload["model"]["config"], **{k: GENERATION_SETTINGS[k](v) for k, v in settings.items()}}
    payload["model"] = {**payload["model"], "config": config}
    save_checkpoint({k: v for k, v in payload.items() if k != "format"}, destination)
    if temperature is not None:
        set_generation_defaults(destination, temperature=temperature)
    load_model(destination)  # the shipped file loads (config checked)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("destination", type=Path)
    parser.add_argument("--set", dest="settings", action="append", default=[], help="generation setting key=value")
    parser.add_argument("--temperature", type=float)
    args = parser.parse_args()
    ship(args.source, args.destination, dict(item.split("=", 1) for item in args.settings), args.temperature)


if __name__ == "__main__":
    main()
