"""The audio commands: `corpus render` (a bundled corpus as audio files, for the audio models) and
`ingest --audio` (`ingest_audio_command`, which `cli.py`'s ingest calls).

`cli.py` registers them (`register`); heavy modules are imported inside each command, so
`tunesmith --help` stays fast. Other audio commands are appended below.
"""

from __future__ import annotations

from pathlib import Path

import typer

from tunesmith.io.atomic import check_output_path


def register(app: typer.Typer, corpus_app: typer.Typer) -> None:
    """Add this module's commands to the CLI app and its `corpus` sub-app."""
    corpus_app.command("render")(corpus_render)


def corpus_render(
    name: str = typer.Argument(..., help="A bundled corpus (tunesmith corpus list)."),
    out: Path = typer.Option(..., "--out", help="Folder for the audio files and render.json."),
    limit: int = typer.Option(None, "--limit", min=1, help="Only the first N pieces."),
    sample_rate: int = typer.Option(12000, "--sample-rate", help="Hz (8000-96000); 12 kHz is pianokeys' rate."),
    engine: str = typer.Option("auto", "--engine",
                               help="fluidsynth, builtin, or auto (FluidSynth when installed with a soundfont)."),
    wav: bool = typer.Option(False, "--wav", help="Write WAV instead of FLAC."),
) -> None:
    """Render every piece of corpus NAME to audio (FLAC), skipping pieces already rendered the same way."""
    from tunesmith.corpora.render import render_corpus

    check_output_path(out, folder=True)
    result = render_corpus(name, out, limit=limit, sample_rate=sample_rate, engine=engine,
                           suffix=".wav" if wav else ".flac", say=typer.echo)
    engines = "; ".join(f"{n} by {description}" for description, n in result["engines"].items())
    typer.echo(f"rendered {result['rendered']} pieces of corpus {name!r} into {out}"
               + (f" ({engines})" if engines else "")
               + (f"; {result['skipped']} already there" if result["skipped"] else ""))


def ingest_audio_command(src_dir: Path, out: Path, workers: int, repair: bool, sample_rate: int, channels: int,
                         chunk_seconds: float) -> None:
    """`tunesmith ingest SRC_DIR --audio --out DIR`: recordings -> a deduplicated dataset of audio chunks."""
    from tunesmith.io.audio_ingest import AudioSettings, ingest_audio_folder, summary_line

    settings = AudioSettings(sample_rate=sample_rate, channels=channels, chunk_seconds=chunk_seconds)
    report = ingest_audio_folder(src_dir, out, settings, workers=workers, repair=repair)
    seconds = report["summary"]["chunks"] * chunk_seconds
    typer.echo(f"{summary_line(report)}; {report['summary']['chunks']} chunks ({seconds / 60:.1f} min of audio); "
               f"report in {out / 'report.json'}")
