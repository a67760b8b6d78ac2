"""The `tunesmith` command line: the command contract of DESIGN.md.

Every command imports its heavy modules inside its body, so `tunesmith --help` stays fast.
Bad input raises `UserError`; `main` prints it as one sentence on stderr and exits with code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from tunesmith.core.errors import UserError

app = typer.Typer(
    help="Train, compare and play deep music generators.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
corpus_app = typer.Typer(help="Bundled corpora: list them or export one as MIDI files.", no_args_is_help=True)
benchmark_app = typer.Typer(help="Published benchmarks.", no_args_is_help=True)
app.add_typer(corpus_app, name="corpus")
app.add_typer(benchmark_app, name="benchmark")


@corpus_app.command("list")
def corpus_list() -> None:
    """List the bundled corpora with their size and source."""
    from tunesmith.corpora import CORPORA

    for name, corpus in CORPORA.items():
        typer.echo(f"{name:<12} {corpus.description}")


@corpus_app.command("export")
def corpus_export(name: str, out: Path = typer.Option(..., "--out", help="Folder for the MIDI files.")) -> None:
    """Write every piece of corpus NAME as a MIDI file into --out."""
    from tunesmith.corpora import export_corpus

    paths = export_corpus(name, out)
    typer.echo(f"wrote {len(paths)} MIDI files of corpus {name!r} to {out}")


@app.command()
def ingest(
    src_dir: Path = typer.Argument(..., help="Folder of MIDI files (searched recursively)."),
    out: Path = typer.Option(..., "--out", help="Dataset folder: cache shards, manifest, report.json."),
    workers: int = typer.Option(0, "--workers", help="Parser processes (0: one per core)."),
) -> None:
    """Parse a MIDI collection into a deduplicated, memory-mappable dataset cache."""
    from tunesmith.io.ingest import ingest_folder

    ingest_folder(src_dir, out, workers=workers)


@app.command()
def render(
    midi: Path = typer.Argument(..., help="MIDI file to render."),
    out: Path = typer.Option(..., "--out", help="Audio file to write: .wav, .flac or .mp3."),
) -> None:
    """Render a MIDI file to audio with FluidSynth (or the built-in fallback synthesizer)."""
    from tunesmith.io.audio import render_midi_file

    engine = render_midi_file(midi, out)
    typer.echo(f"wrote {out} ({engine})")


@app.command()
def plot(
    midi: Path = typer.Argument(..., help="MIDI file to draw."),
    out: Path = typer.Option(..., "--out", help="PNG file to write."),
) -> None:
    """Draw a piano roll of a MIDI file with pitch names and bar lines."""
    from tunesmith.io.plot import plot_midi_file

    plot_midi_file(midi, out)
    typer.echo(f"wrote {out}")


@app.command()
def demo(out: Path = typer.Option(Path("demo-output"), "--out", help="Folder for what the demo writes.")) -> None:
    """End to end on a bundled corpus: train a small model, write MIDI, WAV and PNG."""
    from tunesmith.demo import run_demo

    run_demo(out)


def main() -> None:
    """Entry point: run the app, turning user errors into one sentence and exit code 2."""
    try:
        app()
    except UserError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
