"""The audio commands: `corpus render` (a bundled corpus as audio files, for the audio models),
`transcribe` (a recording -> pianokeys -> MIDI, and back to audio) and `ingest --audio`
(`ingest_audio_command`, which `cli.py`'s ingest calls).

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
    app.command()(transcribe)


def corpus_render(
    name: str = typer.Argument(..., help="A bundled corpus (tunesmith corpus list)."),
    out: Path = typer.Option(..., "--out", help="Folder for the audio files and render.json."),
    limit: int = typer.Option(None, "--limit", min=1, help="Only the first N pieces."),
    sample_rate: int = typer.Option(12000, "--sample-rate", help="Hz (8000-96000); 12 kHz is pianokeys' rate."),
    engine: str = typer.Option("auto", "--engine",
                               help="fluidsynth, builtin, or auto (FluidSynth when installed with a soundfont)."),
    wav: bool = typer.Option(False, "--wav", help="Write WAV instead of FLAC."),
    mono: bool = typer.Option(False, "--mono", help="Mix each piece down to one channel (half the bytes)."),
) -> None:
    """Render every piece of corpus NAME to audio (FLAC), skipping pieces already rendered the same way."""
    from tunesmith.corpora.render import render_corpus

    check_output_path(out, folder=True)
    result = render_corpus(name, out, limit=limit, sample_rate=sample_rate, engine=engine,
                           suffix=".wav" if wav else ".flac", mono=mono, say=typer.echo)
    engines = "; ".join(f"{n} by {description}" for description, n in result["engines"].items())
    typer.echo(f"rendered {result['rendered']} pieces of corpus {name!r} into {out}"
               + (f" ({engines})" if engines else "")
               + (f"; {result['skipped']} already there" if result["skipped"] else ""))


def transcribe(
    audio: Path = typer.Argument(..., help="A recording: .wav, .flac, .ogg, .mp3 ..."),
    out: Path = typer.Option(..., "--out", help="MIDI file for the notes found."),
    resynth: Path = typer.Option(None, "--resynth", help="Also write the piano keys played back (.wav/.flac/.mp3)."),
    kind: str = typer.Option("stft", "--kind", help="Key filters: stft (the seed's 12.5-Hz masks) or cqt."),
    tempo: float = typer.Option(120.0, "--tempo", min=1.0, max=1000.0, help="Quarters per minute of the MIDI grid."),
) -> None:
    """Hear a recording as 88 piano keys every 20 ms (pianokeys) and write the notes it finds as MIDI."""
    import numpy as np

    from tunesmith.core.errors import SkipFile, UserError
    from tunesmith.io.audio import FORMATS, write_audio
    from tunesmith.io.audio_input import read_audio
    from tunesmith.io.midi import write_midi
    from tunesmith.representations import get_representation

    if out.suffix.lower() not in (".mid", ".midi"):
        raise UserError(f"--out {out.name}: the MIDI file name must end in .mid or .midi")
    if resynth is not None and resynth.suffix.lower() not in FORMATS:
        raise UserError(f"--resynth {resynth.name}: the audio file name must end in {', '.join(FORMATS)}")
    for path in (out, resynth):
        if path is not None:
            check_output_path(path)
    rep = get_representation("pianokeys", channels=1, kind=kind, tempo_qpm=tempo)
    try:
        samples = read_audio(audio, rep.config.sample_rate, 1)
    except SkipFile as reason:
        raise UserError(f"{audio} cannot be used: {reason}") from None
    keys = rep.encode_audio(samples)
    score = rep.decode(keys)
    write_midi(score, out)
    typer.echo(f"wrote {out}: {score.note_num()} notes in {keys.shape[-1] * rep.config.frame_seconds:.1f} s")
    if resynth is not None:
        write_audio(np.ascontiguousarray(rep.decode_audio(keys)[0]), rep.config.sample_rate, resynth)
        typer.echo(f"wrote {resynth}")


def ingest_audio_command(src_dir: Path, out: Path, workers: int, repair: bool, sample_rate: int, channels: int,
                         chunk_seconds: float) -> None:
    """`tunesmith ingest SRC_DIR --audio --out DIR`: recordings -> a deduplicated dataset of audio chunks."""
    from tunesmith.io.audio_ingest import AudioSettings, ingest_audio_folder, summary_line

    settings = AudioSettings(sample_rate=sample_rate, channels=channels, chunk_seconds=chunk_seconds)
    report = ingest_audio_folder(src_dir, out, settings, workers=workers, repair=repair)
    seconds = report["summary"]["chunks"] * chunk_seconds
    typer.echo(f"{summary_line(report)}; {report['summary']['chunks']} chunks ({seconds / 60:.1f} min of audio); "
               f"report in {out / 'report.json'}")
