"""`tunesmith fit-prior`: fit the sampling prior of a VAE checkpoint to its training posteriors
(`generation/latent_prior.py`). `cli.py` registers it on its app (`register`)."""

from __future__ import annotations

from pathlib import Path

import typer

from tunesmith.io.atomic import check_output_path


def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI app."""
    app.command("fit-prior")(fit_prior)


def fit_prior(
    checkpoint: str = typer.Argument(..., help="A lstm-vae / conv-vae checkpoint, run folder or shipped name."),
    out: Path = typer.Option(..., "--out", help="Checkpoint file to write (may be the input file)."),
    components: int = typer.Option(8, "--components", help="Gaussians in the mixture."),
    seed: int = typer.Option(0, "--seed", help="Seed of the mixture's initial means."),
) -> None:
    """Fit a Gaussian-mixture prior to a VAE's training posteriors, so `generate` samples where the
    decoder was trained (N(0, I) has holes no training window covers)."""
    from tunesmith.generation.latent_prior import fit_prior as run_fit

    check_output_path(out)
    record = run_fit(checkpoint, out, components, seed)
    typer.echo(f"wrote {out}: {components} components fitted to {record['windows']} training windows "
               f"(mean log-density {record['log_density_nats']} nats per window)")
