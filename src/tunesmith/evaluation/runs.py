"""What `tunesmith evaluate` and `tunesmith compare` work on: piece sets, run folders, one evaluation.

A *piece set* is a named list of scores with their ids, loaded from anything `data.sources.load_scores`
accepts (a corpus name, an ingest dataset folder, a MIDI folder). A *run folder* is a folder with
generated MIDI files, either in `samples/` or in the folder itself, and possibly the `metrics.csv` that
training writes. An `Evaluation` is one generated set measured against a reference set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from symusic import Score

from tunesmith.core.constants import MIDI_SUFFIXES
from tunesmith.core.errors import UserError
from tunesmith.core.score import bar_starts, bars_after
from tunesmith.evaluation.calibration import Calibration, calibrate
from tunesmith.evaluation.compare import EmbedFn, NllFn, SetComparison, compare_sets
from tunesmith.evaluation.memorization import (
    NgramIndex,
    PieceMemorization,
    Thresholds,
    build_index,
    check_set,
    summarize,
)

AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg")


@dataclass
class PieceSet:
    """Scores with their ids; `folder` is the MIDI folder they came from (None for corpora and datasets)."""

    name: str
    ids: list[str]
    scores: list[Score]
    folder: Path | None = None
    metrics_csv: Path | None = None

    def audio_path(self, piece_id: str) -> Path | None:
        """A rendered audio file beside the piece's MIDI file (same name, audio suffix), if there is one."""
        if self.folder is None:
            return None
        base = self.folder / piece_id
        return next((base.with_suffix(s) for s in AUDIO_SUFFIXES if base.with_suffix(s).is_file()), None)


def load_set(source: str | Path, name: str | None = None, limit: int | None = None) -> PieceSet:
    """Load a corpus name, dataset folder or MIDI folder as a `PieceSet`; UserError when it holds no piece."""
    from tunesmith.data.sources import load_scores

    pairs = load_scores(source, limit)
    if not pairs:
        raise UserError(f"{source} holds no readable MIDI piece")
    path = Path(source)
    has_midi = path.is_dir() and any(p.suffix.lower() in MIDI_SUFFIXES for p in path.rglob("*"))
    folder = path if has_midi else None  # corpora and datasets have no files to find audio beside
    return PieceSet(name or path.name or str(source), [p for p, _ in pairs], [s for _, s in pairs], folder)


def find_run_midi(path: Path) -> Path:
    """The folder of generated MIDI in a run folder: `samples/` when it has MIDI files, else the folder."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path} is not a folder")
    for candidate in (path / "samples", path):
        if candidate.is_dir() and any(p.suffix.lower() in MIDI_SUFFIXES for p in candidate.rglob("*")):
            return candidate
    raise UserError(f"{path} has no generated MIDI files (looked in {path / 'samples'} and in {path})")


def load_run(path: Path, limit: int | None = None) -> PieceSet:
    """A run folder (or a plain folder of generated MIDI) as a `PieceSet` named after the folder."""
    path = Path(path).resolve()
    name = path.parent.name if path.name == "samples" else path.name
    pieces = load_set(find_run_midi(path), name=name, limit=limit)
    csv_path = path / "metrics.csv"
    pieces.metrics_csv = csv_path if csv_path.is_file() else None
    return pieces


def cut_to_bars(pieces: PieceSet, bars: int, drop_shorter: bool) -> PieceSet:
    """Every piece cut to its first `bars` bars; with `drop_shorter`, pieces of fewer bars are left out
    (a reference of 8-bar songs says nothing about bars 9-16). UserError when fewer than 2 pieces remain."""
    kept = [(i, bars_after(s, bars)) for i, s in zip(pieces.ids, pieces.scores, strict=True)
            if not drop_shorter or len(bar_starts(s)) >= bars]
    if len(kept) < 2:
        raise UserError(f"only {len(kept)} piece(s) of {pieces.name} have {bars} bars; ask for fewer with --bars")
    return PieceSet(pieces.name, [i for i, _ in kept], [s for _, s in kept], pieces.folder, pieces.metrics_csv)


def length_warning(generated: PieceSet, reference: PieceSet, tolerance: float = 1.3) -> str | None:
    """A sentence when the median lengths in bars differ by more than `tolerance` times: then note counts,
    used pitches and ranges differ for length alone, and `--bars` should cut both sets alike."""
    def median_bars(pieces: PieceSet) -> float:
        return float(sorted(len(bar_starts(s)) for s in pieces.scores)[len(pieces.scores) // 2])

    gen, ref = median_bars(generated), median_bars(reference)
    if max(gen, ref) <= tolerance * max(1.0, min(gen, ref)):
        return None
    return (f"note: the {generated.name} pieces last {gen:g} bars (median), the reference pieces {ref:g}; "
            f"length-dependent features differ for that alone: add --bars {int(min(gen, ref))} to compare alike")


def same_length(runs: list[PieceSet], reference: PieceSet,
                bars: int | None) -> tuple[list[PieceSet], PieceSet, list[str]]:
    """Runs and reference cut to `bars` bars (reference pieces shorter than that left out), or, without
    `bars`, unchanged, with a note for every run whose length differs enough to bias the features."""
    if bars is None:
        return runs, reference, [w for w in (length_warning(run, reference) for run in runs) if w]
    return [cut_to_bars(run, bars, drop_shorter=False) for run in runs], cut_to_bars(reference, bars, True), []


@dataclass
class Evaluation:
    """A generated set measured against a reference: features, PCH KL, hooks and memorization, and the
    reference's calibration (ceiling, floor, separating features; None for a reference under 4 pieces)."""

    generated: PieceSet
    comparison: SetComparison
    memorization: list[PieceMemorization]
    memorization_against: str
    thresholds: Thresholds = field(default_factory=Thresholds)
    ngram: int = 8
    calibration: Calibration | None = None

    def headline(self) -> str:
        """One line: OA over the separating features with ceiling and floor, else the mean over all."""
        every = f"mean overlapping area {self.comparison.mean_overlap_area:.3f} over all features"
        if self.calibration is None or not self.calibration.separating:
            return every
        cal, head = self.calibration, self.calibration.headline(self.comparison)
        return (f"overlapping area {head.oa:.3f} over the {len(cal.separating)} features that separate real "
                f"music from random notes (real-vs-real {cal.headline(cal.ceiling).oa:.3f}, random notes "
                f"{cal.headline(cal.floor).oa:.3f}; weakest {head.weakest} {head.weakest_oa:.2f}); {every}")

    @property
    def name(self) -> str:
        return self.generated.name

    def summary(self) -> dict:
        """JSON-ready: the comparison, the memorization summary and per-piece results, the thresholds."""
        return {
            "name": self.name,
            "comparison": self.comparison.summary(),
            "memorization": {
                "against": self.memorization_against,
                "ngram_tokens": self.ngram,
                "thresholds": {"fraction": self.thresholds.fraction,
                               "span_notes": self.thresholds.span_notes},
                **summarize(self.memorization),
                "pieces": [m.to_dict() for m in self.memorization],
            },
            "metrics_csv": str(self.generated.metrics_csv) if self.generated.metrics_csv else None,
            "calibration": self._calibration_summary(),
        }

    def _calibration_summary(self) -> dict | None:
        if self.calibration is None:
            return None
        head = self.calibration.headline(self.comparison)
        return {**self.calibration.summary(), "headline_oa": None if head.weakest == "-" else round(head.oa, 6),
                "weakest_feature": head.weakest}


def memorization_index(pieces: PieceSet, n: int = 8) -> NgramIndex:
    """The n-gram index of a training (or reference) set."""
    return build_index(pieces.scores, pieces.ids, n=n)


def evaluate_set(generated: PieceSet, reference: PieceSet, train: PieceSet | None = None, *,
                 index: NgramIndex | None = None, thresholds: Thresholds = Thresholds(),
                 embed_fn: EmbedFn | None = None, nll_fn: NllFn | None = None,
                 record: dict | None = None, calibration: Calibration | None = None) -> Evaluation:
    """Compare `generated` with `reference` and check it for copies of `train` (the reference if None).

    Pass a prebuilt `index` (of `train`) to evaluate several generated sets against one training set.
    The reference is calibrated (`evaluation.calibration`) unless a `calibration` is given; `record` is the
    generated set's provenance, so the random floor is measured in the model's representation.
    """
    if len(reference.scores) < 2:
        raise UserError(f"the reference {reference.name} needs at least 2 pieces to compare against")
    against = train if train is not None else reference
    index = index if index is not None else memorization_index(against)
    comparison = compare_sets(reference.scores, generated.scores, embed_fn=embed_fn, nll_fn=nll_fn)
    memorization = check_set(index, generated.scores, generated.ids, thresholds)
    calibration = calibration or calibrate(reference.scores, record)
    return Evaluation(generated, comparison, memorization, against.name, thresholds, index.n, calibration)


def evaluate_runs(runs: Sequence[PieceSet], reference: PieceSet | Sequence[PieceSet], train: PieceSet | None = None,
                  thresholds: Thresholds = Thresholds(),
                  records: Sequence[dict | None] | None = None) -> list[Evaluation]:
    """`evaluate_set` for every run against one reference (or one per run: each run's reference in its
    model's terms, `records` their provenance), sharing one n-gram index of `train` (default: the first
    reference as given) and one calibration per distinct reference."""
    references = [reference] * len(runs) if isinstance(reference, PieceSet) else list(reference)
    seen: dict[str, int] = {}
    for run in runs:  # two runs named alike (a/samples, b/samples are named a, b; x/run, y/run are not)
        seen[run.name] = seen.get(run.name, 0) + 1
        if seen[run.name] > 1:
            run.name = f"{run.name} ({seen[run.name]})"
    against = train if train is not None else references[0]
    index = memorization_index(against)
    records = list(records) if records is not None else [None] * len(runs)
    calibrations: dict[int, Calibration | None] = {}
    results = []
    for run, ref, record in zip(runs, references, records, strict=True):
        if id(ref) not in calibrations:
            calibrations[id(ref)] = calibrate(ref.scores, record)
        results.append(evaluate_set(run, ref, against, index=index, thresholds=thresholds,
                                    calibration=calibrations[id(ref)]))
    return results
