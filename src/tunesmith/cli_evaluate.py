"""The commands that measure generated music against real music: `evaluate` (one set, a report) and
`compare` (several models side by side). Both reduce the reference to each model's representation (from
its `generation.json`) and headline the OA over the features that separate real music from random notes.

`cli.py` registers them on its app (`register`); heavy modules are imported inside each command, so
`tunesmith --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

from tunesmith.io.atomic import check_output_path


def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI app."""
    for command in (evaluate, compare):
        app.command()(command)


def evaluate(
    generated_dir: Path = typer.Argument(..., help="Generated MIDI folder, or a run folder."),
    reference: str = typer.Option(..., "--reference", help="Real music: corpus, dataset or MIDI folder."),
    train: str = typer.Option(None, "--train", help="Training set for the copy check (default: reference)."),
    out: Path = typer.Option(Path("report.html"), "--out", help="Report: .html (self-contained) or .json."),
    limit: int = typer.Option(None, "--limit", min=2, help="Use at most this many pieces of each set."),
    checkpoint: str = typer.Option(None, "--checkpoint", help="Likelihood checkpoint: adds each set's NLL."),
    embedder: str = typer.Option(None, "--embedder", help="Autoencoder checkpoint: adds a Frechet distance."),
    as_is: bool = typer.Option(False, "--as-is", help="Compare with the reference as it is, not as the "
                               "generating model's representation holds it (read from generation.json)."),
    bars: int = typer.Option(None, "--bars", min=1, help="Cut every piece to its first N bars; reference "
                             "pieces shorter than N are left out (like against like in length)."),
) -> None:
    """Measure generated music against real music (features, overlap, copies) and write a report.

    When the generated folder has a generation.json, the reference is first reduced to what the model's
    representation can hold (e.g. its melody), so like is measured against like."""
    from tunesmith.evaluation.audio_sets import evaluate_audio_command, is_audio_reference  # audio-vaegan
    if is_audio_reference(reference):  # audio-vaegan: a folder of recordings: piano-key energies, JSON out
        evaluate_audio_command(generated_dir, Path(reference), out, limit, typer.echo)  # audio-vaegan
        return  # audio-vaegan
    from tunesmith.evaluation.provenance import (
        generated_in_model_terms,
        key_normalised,
        read_sidecar,
        reference_in_model_terms,
    )
    from tunesmith.evaluation.report import check_out, write_evaluation
    from tunesmith.evaluation.runs import evaluate_set, find_run_midi, load_run, load_set, same_length
    from tunesmith.scoring.likelihood import make_embed_fn, make_nll_fn

    check_output_path(check_out(out))
    generated = load_run(generated_dir, limit)
    ref = load_set(reference, limit=limit)
    record = read_sidecar(find_run_midi(generated_dir))
    if record is not None and not as_is:
        ref, generated = reference_in_model_terms(ref, record), generated_in_model_terms(generated, record)
        typer.echo(f"reference measured as {ref.name}, {len(ref.scores)} pieces (--as-is to keep it unchanged)"
                   + ("; both sets in C major / A minor (the model was trained with transposed or "
                      "key-normalised data)" if key_normalised(record) else ""))
    [generated], ref, notes = same_length([generated], ref, bars)
    train_set = load_set(train, limit=limit) if train else None
    scorer = make_nll_fn(checkpoint) if checkpoint else None
    result = evaluate_set(
        generated, ref, train_set,
        nll_fn=scorer,
        embed_fn=make_embed_fn(embedder) if embedder else None,
        record=None if as_is else record,
    )
    write_evaluation(result, ref, out)
    from tunesmith.evaluation.multitrack_metrics import write_multitrack_report  # band-5
    multitrack = write_multitrack_report(generated, ref, out)  # band-5: per-instrument metrics and overlap
    if multitrack is not None:  # band-5
        typer.echo(f"wrote {multitrack} (per-instrument metrics, overlap vs real-vs-real)")  # band-5
    if scorer is not None and result.comparison.nll:
        nll = result.comparison.nll
        typer.echo(f"NLL under {checkpoint} ({scorer.unit}): reference {nll['reference']:.3f}, "
                   f"generated {nll['generated']:.3f}")
    copies = sum(m.copied for m in result.memorization)
    typer.echo(f"wrote {out}: {result.headline()}; {copies} of {len(result.memorization)} pieces flagged as copies")
    for note in notes:  # after the result: a failed run says one sentence and nothing else
        typer.echo(note)


def compare(
    runs: list[Path] = typer.Argument(..., help="Run folders or generated MIDI folders."),
    reference: str = typer.Option(..., "--reference", help="Real music: corpus, dataset or MIDI folder."),
    train: str = typer.Option(None, "--train", help="Training set for the copy check (default: reference)."),
    out: Path = typer.Option(Path("comparison.html"), "--out", help="Report: .html or .json."),
    limit: int = typer.Option(None, "--limit", min=2, help="Use at most this many pieces of each set."),
    as_is: bool = typer.Option(False, "--as-is", help="Measure every run against the reference as it is, "
                               "not as each run's model representation holds it (from generation.json)."),
    bars: int = typer.Option(None, "--bars", min=1, help="Cut every piece to its first N bars; reference "
                             "pieces shorter than N are left out (like against like in length)."),
) -> None:
    """Compare several models side by side against one reference: one table, best value per column marked.

    Each run with a generation.json is measured against the reference reduced to its own model's
    representation (like against like); the copy check uses the unreduced training set."""
    from tunesmith.evaluation.provenance import generated_in_model_terms, read_sidecar, reference_in_model_terms
    from tunesmith.evaluation.report import check_out, write_comparison
    from tunesmith.evaluation.runs import evaluate_runs, find_run_midi, load_run, load_set, same_length

    check_output_path(check_out(out))
    sets = [load_run(run, limit) for run in runs]
    ref = load_set(reference, limit=limit)
    train_set = load_set(train, limit=limit) if train else None
    records = [None if as_is else read_sidecar(find_run_midi(run)) for run in runs]
    references = [reference_in_model_terms(ref, record) if record else ref for record in records]
    sets = [generated_in_model_terms(run, record) for run, record in zip(sets, records, strict=True)]
    cut = [same_length([run], run_ref, bars) for run, run_ref in zip(sets, references, strict=True)]
    sets, references = [runs_cut[0] for runs_cut, _, _ in cut], [run_ref for _, run_ref, _ in cut]
    results = evaluate_runs(sets, references, train_set or ref, records=records)  # copies: against real pieces
    write_comparison(results, ref, out)
    for result, run_ref in zip(results, references, strict=True):
        typer.echo(f"{result.name} against {run_ref.name}: {result.headline()}; "
                   f"{sum(m.copied for m in result.memorization)} copies")
    for _, _, notes in cut:
        for note in notes:
            typer.echo(note)
    typer.echo(f"wrote {out}")
