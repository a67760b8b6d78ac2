"""The commands that play with a model beyond `generate`: walk and rebuild a VAE's latent space
(`interpolate`, `reconstruct`), the local web studio (`serve`) and MIDI call and response (`live`).

`cli.py` registers them on its app (`register`); heavy modules are imported inside each command, so
`tunesmith --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

from tunesmith.core.errors import UserError
from tunesmith.io.atomic import check_output_path


def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI app."""
    for command in (interpolate, reconstruct, serve, live):
        app.command()(command)


def interpolate(
    a: Path = typer.Argument(..., help="First MIDI piece (its first window is encoded)."),
    b: Path = typer.Argument(..., help="Second MIDI piece."),
    out: Path = typer.Option(..., "--out", help="Folder for interp_00.mid ... and generation.json."),
    steps: int = typer.Option(8, "--steps", min=2, max=64, help="Pieces written, both end points included."),
    checkpoint: str = typer.Option("bach-vae", "--checkpoint",
                                   help="A lstm-vae / conv-vae checkpoint, run folder or shipped name."),
    linear: bool = typer.Option(False, "--linear", help="Straight-line interpolation instead of spherical (slerp)."),
    temperature: float = typer.Option(None, "--temperature",
                                      help="Sample each point at this temperature (default: the likeliest decoding)."),
) -> None:
    """Walk the latent space of a VAE checkpoint from piece A to piece B and write each point as MIDI."""
    from tunesmith.generation.latent import interpolate as run_interpolation

    check_output_path(out, folder=True)
    sampling = _latent_sampling(temperature)
    for path in run_interpolation(checkpoint, a, b, steps, out, spherical=not linear, sampling=sampling):
        typer.echo(f"wrote {path}")


def reconstruct(
    midi: Path = typer.Argument(..., help="MIDI piece whose first window is encoded and decoded."),
    out: Path = typer.Option(..., "--out", help="MIDI file to write (generation.json goes beside it)."),
    checkpoint: str = typer.Option("bach-vae", "--checkpoint",
                                   help="A lstm-vae / conv-vae checkpoint, run folder or shipped name."),
    temperature: float = typer.Option(None, "--temperature",
                                      help="Sample at this temperature (default: the most likely decoding)."),
) -> None:
    """Encode a piece with a VAE checkpoint and write what its decoder makes of the latent."""
    from tunesmith.generation.latent import reconstruct as run_reconstruction

    check_output_path(out)
    typer.echo(f"wrote {run_reconstruction(checkpoint, midi, out, sampling=_latent_sampling(temperature))}")


def _latent_sampling(temperature: float | None):
    """None (greedy decoding) or a SamplingConfig at --temperature, checked like `generate` checks it."""
    from tunesmith.models.distributions import SamplingConfig, check_temperature

    check_temperature(temperature)
    return None if temperature is None else SamplingConfig(temperature=temperature)


def serve(
    host: str = typer.Option("127.0.0.1", "--host",
                             help="Address to listen on (a loopback one unless --allow-remote)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    models: Path = typer.Option(None, "--models", help="Folder of your own checkpoints (.ckpt files, run folders) "
                                "offered besides the shipped ones."),
    allow_remote: bool = typer.Option(False, "--allow-remote",
                                      help="Allow a --host other machines can reach (anyone who can may run jobs)."),
    queue: int = typer.Option(4, "--queue", min=1, max=64, help="Jobs that may wait; more are refused (HTTP 429)."),
    job_seconds: float = typer.Option(120.0, "--job-seconds", min=1, max=3600, help="Time limit of one job."),
) -> None:
    """Run the local web studio: pick a checkpoint, upload a primer, generate, see, listen, download."""
    from tunesmith.web.command import serve_command

    serve_command(host, port, models, allow_remote, max_waiting=queue, job_seconds=job_seconds)


def live(
    checkpoint: str = typer.Argument(None, help="A .ckpt file, a run folder, or a shipped name (e.g. lstm-bach)."),
    in_port: str = typer.Option(None, "--in", help="MIDI input port (default: a new virtual port 'tunesmith in')."),
    out_port: str = typer.Option(None, "--out", help="MIDI output port (default: a new virtual port 'tunesmith out')."),
    list_ports: bool = typer.Option(False, "--list-ports", help="List the MIDI ports and exit."),
    bars: int = typer.Option(2, "--bars", min=1, max=32, help="New bars per answer."),
    primer_bars: int = typer.Option(2, "--primer-bars", min=1, max=16, help="The phrase's last bars fed as context."),
    wait_beats: float = typer.Option(2.0, "--wait-beats", help="Beats of silence that ask for an answer."),
    bpm: float = typer.Option(120.0, "--bpm", help="Tempo when no MIDI clock is received."),
    channel: int = typer.Option(1, "--channel", min=1, max=16, help="Output MIDI channel."),
    temperature: float = typer.Option(None, "--temperature", help="Sampling temperature (> 0)."),
    top_k: int = typer.Option(None, "--top-k", min=1, help="Sample among the k most likely choices."),
    top_p: float = typer.Option(None, "--top-p", min=0.0, max=1.0, help="Nucleus sampling mass."),
    min_p: float = typer.Option(None, "--min-p", help="Keep tokens at least this share (0..1) of the likeliest one."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**31 - 1, help="Random seed of the first answer."),
    speculate: bool = typer.Option(True, "--speculate/--no-speculate",
                                   help="Start the model before the pause ends (cancelled if you play on)."),
) -> None:
    """Call and response over MIDI: when you pause, the model continues what you just played, in time."""
    from tunesmith.live.answer import AnswerOptions
    from tunesmith.live.command import live_command
    from tunesmith.live.session import LiveConfig

    if checkpoint is None and not list_ports:
        raise UserError("give a checkpoint (tunesmith live lstm-bach) or --list-ports")
    config = LiveConfig(wait_beats=wait_beats, bpm=bpm, channel=channel - 1, speculate=speculate)
    options = AnswerOptions(bars=bars, primer_bars=primer_bars, temperature=temperature, top_k=top_k, top_p=top_p,
                            min_p=min_p, seed=seed)
    live_command(checkpoint, in_port, out_port, list_ports, config, options, say=typer.echo)
