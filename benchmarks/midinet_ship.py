"""Ship a MidiNet run's checkpoint: a slim inference copy (`export_for_inference`) with chosen generation
settings written into its model config (`spread_scale`, `redraws`, `hold_bias`, `off_key_penalty`,
`leap_penalty`, `scale_penalty`, `min_recent_pitches`,
`interval_prior`, `profile_prior`, `profile_feedback`: `models/midinet_nets.MidiNetConfig`) and sampling
defaults (`set_generation_defaults`).

Usage: python benchmarks/midinet_ship.py RUN_CKPT DST [--set key=value ...] [--temperature T]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tunesmith.core.errors import UserError
from tunesmith.models.checkpoint import load_checkpoint, load_model, save_checkpoint, set_generation_defaults
from tunesmith.training.checkpoint import export_for_inference

GENERATION_SETTINGS = {"spread_scale": float, "redraws": int, "hold_bias": float, "off_key_penalty": float,
                       "leap_penalty": float, "scale_penalty": float, "min_recent_pitches": int,
                       "interval_prior": float, "profile_prior": float,
                       "profile_feedback": float}


def setting_values(items: list[str]) -> dict[str, float | int]:
    """`key=value` strings -> {key: value} of known generation settings; UserError (one sentence) otherwise."""
    values = {}
    for item in items:
        key, _, text = item.partition("=")
        if key not in GENERATION_SETTINGS:
            raise UserError(f"{key or item!r} is not a generation setting; known: {', '.join(GENERATION_SETTINGS)}")
        try:
            values[key] = GENERATION_SETTINGS[key](text)
        except ValueError:
            raise UserError(f"--set {item}: {key} takes a {GENERATION_SETTINGS[key].__name__} value") from None
    return values


def ship(source: Path, destination: Path, settings: dict[str, float | int], temperature: float | None) -> None:
    """Export `source` to `destination` with `settings` (generation settings) and `temperature`; the file is
    written next to `destination` and moved there only once it loads (config checked), so a wrong value
    leaves a shipped file as it was."""
    draft = destination.with_name(destination.name + ".draft")
    try:
        export_for_inference(source, draft)
        payload = load_checkpoint(draft)
        payload["model"] = {**payload["model"], "config": {**payload["model"]["config"], **settings}}
        save_checkpoint({k: v for k, v in payload.items() if k != "format"}, draft)
        if temperature is not None:
            set_generation_defaults(draft, temperature=temperature)
        load_model(draft)
        draft.replace(destination)
    finally:
        draft.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("destination", type=Path)
    parser.add_argument("--set", dest="settings", action="append", default=[], help="generation setting key=value")
    parser.add_argument("--temperature", type=float)
    args = parser.parse_args()
    try:
        ship(args.source, args.destination, setting_values(args.settings), args.temperature)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
