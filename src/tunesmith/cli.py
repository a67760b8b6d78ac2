"""The `tunesmith` command line: the command contract of DESIGN.md.

Every command imports its heavy modules inside its body, so `tunesmith --help` stays fast.
Bad input raises `UserError`; `main` prints it as one sentence on stderr and exits with code 2.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from pathlib import Path

import typer

from tunesmith.cli_audio import ingest_audio_command  # audio ingest
from tunesmith.cli_audio import register as register_audio_commands
from tunesmith.cli_evaluate import register as register_evaluate_commands
from tunesmith.cli_latent import register as register_latent_commands  # fit-prior
from tunesmith.cli_play import register as register_play_commands
from tunesmith.core.errors import UserError, require_file
from tunesmith.io.atomic import check_output_path

app = typer.Typer(
    help="Train, compare and play deep music generators.",
    epilog="Exit codes: 0 done; 2 bad input, or an output that cannot be written (a file in the way, no "
           "permission, a full disk), said in one sentence; 1 a bug in tunesmith (--verbose shows the traceback); "
           "130 interrupted.",
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

    check_output_path(out, folder=True)
    paths = export_corpus(name, out)
    typer.echo(f"wrote {len(paths)} MIDI files of corpus {name!r} to {out}")


@app.command()
def ingest(
    src_dir: Path = typer.Argument(..., help="Folder of MIDI files (searched recursively)."),
    out: Path = typer.Option(..., "--out", help="Dataset folder: cache shards, manifest, report.json."),
    workers: int = typer.Option(0, "--workers", help="Parser processes (0: one per core; capped at the cores)."),
    repair: bool = typer.Option(False, "--repair",
                                help="Rebuild damaged shards (the whole dataset if its manifest is unusable)."),
    audio: bool = typer.Option(False, "--audio", help="Recordings (wav/flac/ogg/mp3) into chunks."),  # audio ingest
    sample_rate: int = typer.Option(12000, "--sample-rate", help="With --audio: Hz of the chunks."),  # audio ingest
    channels: int = typer.Option(1, "--channels", help="With --audio: 1 (mono) or 2 (stereo)."),  # audio ingest
    chunk_seconds: float = typer.Option(10.0, "--chunk-seconds", help="With --audio: chunk length."),  # audio ingest
) -> None:
    """Parse a MIDI collection into a deduplicated, memory-mappable, checksummed dataset cache."""
    from tunesmith.io.ingest import ingest_folder, summary_line

    check_output_path(out, folder=True)
    if audio:  # audio ingest
        return ingest_audio_command(src_dir, out, workers, repair, sample_rate, channels, chunk_seconds)  # audio ingest
    report = ingest_folder(src_dir, out, workers=workers, repair=repair)
    typer.echo(f"{summary_line(report)}; report in {out / 'report.json'}")


@app.command()
def render(
    midi: Path = typer.Argument(..., help="MIDI file to render."),
    out: Path = typer.Option(..., "--out", help="Audio file to write: .wav, .flac or .mp3."),
    engine: str = typer.Option(
        "auto", "--engine", help="auto (FluidSynth if installed), fluidsynth, or builtin (the fallback)."
    ),
) -> None:
    """Render a MIDI file to audio with FluidSynth (or the built-in fallback synthesizer)."""
    from tunesmith.io.audio import ENGINES, render_midi_file

    if engine not in ENGINES:
        raise UserError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}.")
    check_output_path(out)
    used = render_midi_file(midi, out, engine=engine)
    typer.echo(f"wrote {out} with {used}")


@app.command()
def plot(
    midi: Path = typer.Argument(..., help="MIDI file to draw."),
    out: Path = typer.Option(..., "--out", help="PNG file to write."),
) -> None:
    """Draw a piano roll of a MIDI file with pitch names and bar lines."""
    check_output_path(out)
    from tunesmith.io.plot import plot_midi_file

    plot_midi_file(midi, out)
    typer.echo(f"wrote {out}")


@app.command()
def train(
    config: Path = typer.Argument(None, help="YAML recipe (see configs/); optional with --resume."),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe key: --set optim.lr=1e-3 (repeatable)."),
    out: Path = typer.Option(None, "--out", help="Run folder (default: runs/NAME-TIMESTAMP)."),
    resume: Path = typer.Option(None, "--resume", help="Continue the run in this folder from its last checkpoint."),
    allow_data_change: bool = typer.Option(
        False, "--allow-data-change",
        help="With --resume: continue even though the data differs from the checkpoint's (by default an error)."),
    init_from: str = typer.Option(
        None, "--init-from", help="Start the new run from this checkpoint's weights (file, run folder or shipped "
                                  "name; new vocabulary tokens grow rows): --set trainer.init_from=CKPT."),
) -> None:
    """Train a model family on a corpus, dataset folder or MIDI folder, as a YAML recipe describes."""
    if config is None and resume is None:
        raise UserError("give a recipe (tunesmith train configs/NAME.yaml) or --resume RUN_DIR")
    if init_from is not None:
        if resume is not None:
            raise UserError("--init-from starts a new run; a resumed run continues from its own checkpoint")
        set_ = [*set_, f"trainer.init_from={init_from}"]
    if config is not None:
        require_file(config, "config file")
    if resume is None:
        check_output_path(out or Path("runs"), folder=True)  # the default run folder goes under runs/
    from tunesmith.training.loop import train_command

    run_dir = train_command(config, set_, out, resume, allow_data_change)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one line from rank 0, not one per process
        typer.echo(f"run folder: {run_dir} (checkpoints/best.ckpt, metrics.csv, learning_curves.png)")


# Caps that keep a typo from running for hours; --no-limits lifts them.
LIMITS = {"n": 1000, "bars": 256, "steps": 20_000}


@app.command()
def generate(
    checkpoint: str = typer.Argument(..., help="A .ckpt file, a run folder, or a shipped name (e.g. lstm-bach)."),
    out: Path = typer.Option(..., "--out", help="Folder for the generated files (and generation.json)."),
    n: int = typer.Option(4, "--n", min=1, help=f"Number of pieces (at most {LIMITS['n']})."),
    bars: int = typer.Option(8, "--bars", min=1, help="New bars per piece, after the primer's last bar."),
    steps: int = typer.Option(None, "--steps", min=1, help="Exactly this many new tokens/frames (instead of --bars)."),
    primer: Path = typer.Option(None, "--primer", help="MIDI file to continue."),
    primer_bars: int = typer.Option(None, "--primer-bars", min=1, max=64,
                                    help="Keep the primer's last K bars (default 8) as context; the output "
                                         "holds them, then the new bars."),
    temperature: float = typer.Option(None, "--temperature", help="Sampling temperature (> 0)."),
    top_k: int = typer.Option(None, "--top-k", min=1, help="Sample among the k most likely choices."),
    top_p: float = typer.Option(None, "--top-p", min=0.0, max=1.0, help="Nucleus sampling mass."),
    min_p: float = typer.Option(None, "--min-p", help="Keep tokens at least this share (0..1) of the likeliest one."),
    no_constrain: bool = typer.Option(False, "--no-constrain", help="Do not mask tokens that break the grammar."),
    ending: str = typer.Option("bars", "--ending", help="bars: cut after exactly --bars bars; model (token "
                               "families): at least --bars bars, then where the model ends the piece, at a bar line."),
    candidates: int = typer.Option(1, "--candidates", help="Countdown models, exact bars: draw each piece this "
                                   "many times (1-64), keep the draw that closes best: most cadence "
                                   "tests passed (tonic bass, tonic chord, held), then the model's belief in "
                                   "its end."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**63 - 1, help="Random seed."),
    chords: str = typer.Option(None, "--chords", help='Chord progression for chord-conditioned models: "C G Am F".'),
    audio: bool = typer.Option(False, "--audio", help="Also write WAV audio."),
    mp3: bool = typer.Option(False, "--mp3", help="Also write MP3 audio."),
    plot_: bool = typer.Option(False, "--plot", help="Also write a piano-roll PNG."),
    no_limits: bool = typer.Option(False, "--no-limits", help=f"Lift the caps {LIMITS}."),
) -> None:
    """Generate new pieces from a checkpoint, from nothing or continuing a primer.

    Options a model family does not support are refused (see `tunesmith models`)."""
    from tunesmith.models.distributions import SamplingConfig, check_temperature

    check_temperature(temperature)
    for name, value in (("n", n), ("bars", bars), ("steps", steps)):
        if value is not None and value > LIMITS[name] and not no_limits:
            raise UserError(f"--{name} {value} is above the limit of {LIMITS[name]}; add --no-limits to go beyond")
    if primer_bars is not None and primer is None:
        raise UserError("--primer-bars needs --primer")
    if chords is not None and not chords.split():
        raise UserError('--chords needs at least one chord name, e.g. --chords "C G Am F"')
    check_output_path(out, folder=True)
    from tunesmith.generation.generate import GenerateRequest, generate_command

    request = GenerateRequest(
        n=n, bars=bars, steps=steps, primer=primer, primer_bars=primer_bars or 8, seed=seed,
        sampling=SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p),
        chords=chords.split() if chords else None, audio="mp3" if mp3 else ("wav" if audio else None), plot=plot_,
    )
    request.sampling = SamplingConfig(**{**vars(request.sampling), "min_p": min_p})  # checks --min-p
    request.constrain = not no_constrain
    request.ending = ending
    request.candidates = candidates
    for path in generate_command(checkpoint, out, request):
        typer.echo(f"wrote {path}")


@app.command()
def models() -> None:
    """List the registered model families: objective, likelihood, generation options and config keys."""
    import dataclasses

    from tunesmith.models import MODELS
    from tunesmith.models.base import GENERATION_OPTIONS

    for name, cls in MODELS.items():
        defaults = {**dataclasses.asdict(cls.Config()), **cls.defaults()}
        likelihood = f"{cls.likelihood.kind} NLL per {cls.likelihood.unit}" if cls.likelihood else "no likelihood"
        generation = cls.generation or "does not generate"
        options = " ".join(GENERATION_OPTIONS[o] for o in sorted(cls.options)) or "-"
        summary = (cls.__doc__ or "").strip().splitlines()[0]
        config = ", ".join(f"{k}={v!r}" for k, v in defaults.items())
        typer.echo(f"{name:<16} {summary}")
        typer.echo(f"    objective {cls.objective}; {likelihood}; generation {generation}; options {options}")
        typer.echo(f"    config: {config}")


@benchmark_app.command("jsb")
def benchmark_jsb(
    checkpoint: str = typer.Argument(..., help="A .ckpt file, a run folder, or a shipped name (jsb-best)."),
    data: Path = typer.Option(..., "--data", help="JSB Chorales file (JSON or pickle) holding the split."),
    split: str = typer.Option("valid", "--split", help="valid or test."),
    out: Path = typer.Option(None, "--out", help="JSON file for the result (default: jsb-MODEL-SPLIT.json)."),
) -> None:
    """Exact negative log-likelihood per time step (nats, 88 keys per frame) of a piano-roll model on JSB."""
    if out is not None:
        check_output_path(out)
    from tunesmith.scoring.jsb import benchmark_jsb as score_jsb

    result = score_jsb(checkpoint, data, split, out)
    typer.echo(f"JSB Chorales {split}: {result['nll_nats_per_frame']:.4f} nats per frame "
               f"({result['pieces']} pieces, {result['frames']} frames; model {result['model']}, "
               f"{result['parameters']:,} parameters)")
    typer.echo(f"wrote {result['written']}")


@app.command()
def demo(out: Path = typer.Option(Path("demo-output"), "--out", help="Folder for what the demo writes.")) -> None:
    """End to end on a bundled corpus: train a small model, write MIDI, WAV and PNG."""
    check_output_path(out, folder=True)
    from tunesmith.demo import run_demo

    run_demo(out, say=typer.echo)


register_play_commands(app)
register_evaluate_commands(app)
register_latent_commands(app)  # fit-prior
register_audio_commands(app, corpus_app)


@app.callback()
def _global_options(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Say more; show tracebacks of unexpected errors."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors."),
) -> None:
    """Train, compare and play deep music generators."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s" if verbose else "%(message)s",
                        stream=sys.stderr, force=True)
    _STATE["verbose"] = verbose


_STATE = {"verbose": False}


def main() -> None:
    """Entry point: the one error boundary. Bad input (UserError) and an output path that cannot be
    written (OSError) are one sentence on stderr and exit code 2; anything else is a bug, reported in
    one sentence with a pointer to --verbose (which shows the traceback), exit code 1."""
    from typer._click import exceptions as click  # typer 0.2x vendors click; its errors live here

    try:
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except click.NoArgsIsHelpError as error:
        typer.echo(error.ctx.get_help() if error.ctx else str(error))
        sys.exit(0)
    except click.ClickException as error:  # a malformed command line: click's own one-line message
        _fail(f"error: {error.format_message()}", 2)
    except (typer.Exit, SystemExit) as error:
        sys.exit(getattr(error, "exit_code", getattr(error, "code", 0)))
    except typer.Abort:
        _fail("interrupted", 130)
    except UserError as error:
        _fail(f"error: {error}", 2)
    except OSError as error:
        where = f" {error.filename}" if getattr(error, "filename", None) else ""
        _fail(f"error: cannot write or read{where}: {error.strerror or error}", 2)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as error:  # noqa: BLE001 (the boundary: a bug must still end in one sentence)
        if _STATE["verbose"]:
            traceback.print_exc()
        _fail(f"internal error ({error.__class__.__name__}: {str(error)[:200]}); this is a bug in tunesmith: "
              "rerun with --verbose for the traceback and report it", 1)


def _fail(message: str, code: int) -> None:
    typer.echo(message.replace("\n", " "), err=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
