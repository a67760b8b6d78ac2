"""The side-by-side table of `tunesmith compare`: one row per model, one column per number, best marked.

Pure functions over `Evaluation.summary()` dicts, so the HTML report, the JSON report and the tests
read the same table. Each column says what "best" means: the largest value (overlapping areas), the
smallest (divergences, copies), or the closest to the reference (feature means).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

GOAL_SYMBOL = {"max": "\u2191", "min": "\u2193", "closest": "\u2248 ref"}  # arrows up / down, "about equal"
GOAL_LEGEND = "\u2191 higher is better, \u2193 lower is better, \u2248 ref closest to the reference row"


@dataclass(frozen=True)
class Column:
    """One column: `key` into a row, a `label`, what best means (`goal`), and the reference value."""

    key: str
    label: str
    goal: str
    target: float | None = None


def _summary_columns(summaries: Sequence[dict]) -> list[Column]:
    columns = [Column("headline_oa", "OA (separating features)", "max")] if any(
        (s.get("calibration") or {}).get("headline_oa") is not None for s in summaries) else []
    columns += [Column("mean_overlap_area", "mean OA", "max"), Column("mean_kl_divergence", "mean KL", "min")]
    columns += [Column(f"pch_kl_{part}", f"PCH KL {part.replace('_', ' ')}", "min")
                for part in ("whole", "first_half", "second_half")]
    if any(s["comparison"]["frechet_distance"] is not None for s in summaries):
        columns.append(Column("frechet_distance", "Frechet distance", "min"))
    if any(s["comparison"]["nll"] for s in summaries):
        columns.append(Column("nll_reference", "NLL of reference", "min"))
    columns += [Column("copies", "copies", "min"), Column("mean_fraction_found", "n-grams found", "min"),
                Column("longest_span_notes", "longest span (notes)", "min")]
    return columns


def comparison_columns(summaries: Sequence[dict]) -> list[Column]:
    """Every column of the table for these evaluations (the features of the first one set the order)."""
    columns = _summary_columns(summaries)
    features = summaries[0]["comparison"]["features"] if summaries else []
    columns += [Column(f"oa:{f['name']}", f"OA {f['name']}", "max") for f in features]
    columns += [Column(f"mean:{f['name']}", f["name"], "closest", f["reference_mean"])
                for f in features if not isinstance(f["reference_mean"], list)]
    return columns


def comparison_row(summary: dict) -> dict[str, float | None]:
    """The numbers of one evaluation keyed as in `comparison_columns`."""
    comparison, memo = summary["comparison"], summary["memorization"]
    row: dict[str, float | None] = {
        "headline_oa": (summary.get("calibration") or {}).get("headline_oa"),
        "mean_overlap_area": comparison["mean_overlap_area"],
        "mean_kl_divergence": comparison["mean_kl_divergence"],
        "frechet_distance": comparison["frechet_distance"],
        "nll_reference": (comparison["nll"] or {}).get("reference"),
        "copies": memo["copies"], "mean_fraction_found": memo["mean_fraction_found"],
        "longest_span_notes": memo["longest_span_notes"],
    }
    row |= {f"pch_kl_{part}": value for part, value in comparison["pitch_class_kl"].items()}
    for feature in comparison["features"]:
        row[f"oa:{feature['name']}"] = feature["overlap_area"]
        if not isinstance(feature["generated_mean"], list):
            row[f"mean:{feature['name']}"] = feature["generated_mean"]
    return row


def best_rows(column: Column, values: Sequence[float | None], tolerance: float = 1e-9) -> set[int]:
    """Indices of the best value(s) of a column (ties all win); empty when no row has a value."""
    scored = [(i, _score(column, v)) for i, v in enumerate(values) if v is not None]
    if not scored:
        return set()
    best = min(score for _, score in scored)
    return {i for i, score in scored if score <= best + tolerance}


def _score(column: Column, value: float) -> float:
    """Smaller is better after this transform, whatever the column's goal."""
    if column.goal == "max":
        return -value
    if column.goal == "closest":
        return abs(value - column.target) if column.target is not None else 0.0
    return value


def comparison_table(summaries: Sequence[dict]) -> dict:
    """The whole table: columns, one row per model (name + values), and the best rows of each column."""
    columns = comparison_columns(summaries)
    rows = [comparison_row(s) for s in summaries]
    best = {c.key: sorted(best_rows(c, [row.get(c.key) for row in rows])) for c in columns}
    return {
        "columns": [{"key": c.key, "label": c.label, "goal": c.goal, "reference": c.target} for c in columns],
        "rows": [{"name": s["name"], "values": row} for s, row in zip(summaries, rows, strict=True)],
        "best": best,
    }
