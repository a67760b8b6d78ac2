"""The evaluation report: one self-contained HTML file (inline PNG and audio as base64), or JSON.

The HTML needs nothing but a browser: no script, no stylesheet or font from the network, every image
and sound embedded as a `data:` URI, so it can be mailed or opened offline. `write_evaluation` serves
`tunesmith evaluate`, `write_comparison` serves `tunesmith compare`; the suffix of `out` picks the format.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path

from tunesmith.core.errors import UserError
from tunesmith.evaluation import plots
from tunesmith.evaluation.runs import Evaluation, PieceSet
from tunesmith.evaluation.tables import GOAL_LEGEND, GOAL_SYMBOL, comparison_table
from tunesmith.io.atomic import write_atomic

MAX_AUDIO_BYTES = 20 * 1024 * 1024  # larger files are named but not embedded
AUDIO_TYPES = {".wav": "audio/wav", ".mp3": "audio/mpeg", ".flac": "audio/flac", ".ogg": "audio/ogg"}
STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; max-width: 1200px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th { background: #f2f2f2; } td.name, th.name { text-align: left; }
td.best { background: #d9f2d9; font-weight: bold; } tr.copied td { background: #f8d7d7; }
.wide { overflow-x: auto; } img { max-width: 100%; margin: 4px 0; } .note { color: #666; font-size: 0.85em; }
"""
FEATURE_HEADERS = ("feature", "reference mean", "reference std", "generated mean", "generated std",
                   "OA", "KL", "mean intra-reference distance", "mean inter-set distance",
                   "OA real-vs-real", "OA random-vs-real", "in headline", "note")


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return "histogram (see figure)"
    return f"{value:.{digits}f}" if isinstance(value, float) else escape(str(value))


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], row_classes: Sequence[str] = ()) -> str:
    """An HTML table; cells are already escaped HTML fragments."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        f'<tr class="{row_classes[i] if i < len(row_classes) else ""}">' + "".join(row) + "</tr>"
        for i, row in enumerate(rows)
    )
    return f'<div class="wide"><table><tr>{head}</tr>{body}</table></div>'


def _img(png: bytes | None, alt: str) -> str:
    if not png:
        return ""
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _audio(path: Path | None) -> str:
    if path is None:
        return ""
    if path.stat().st_size > MAX_AUDIO_BYTES:
        return f'<p class="note">audio {escape(path.name)} too large to embed</p>'
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<audio controls src="data:{AUDIO_TYPES[path.suffix.lower()]};base64,{data}"></audio>'


def _page(title: str, sections: Sequence[str]) -> str:
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>"
            f'<p class="note">written by tunesmith on {stamp}</p>' + "\n".join(sections) + "</body></html>\n")


def _summary_section(ev: Evaluation, reference: PieceSet) -> str:
    c, m = ev.comparison.summary(), ev.summary()["memorization"]
    pch = c["pitch_class_kl"]
    rows = [
        ("generated pieces", ev.comparison.n_generated),
        ("reference pieces", f"{reference.name}: {c['n_reference']}"),
        *_calibration_rows(ev),
        ("mean overlapping area over all features (1 = like the reference)", c["mean_overlap_area"]),
        ("mean KL divergence (0 = like the reference)", c["mean_kl_divergence"]),
        (f"PCH KL(real || generated), eps {c['pitch_class_kl_epsilon']:g}: whole", pch["whole"]),
        ("PCH KL first half", pch["first_half"]), ("PCH KL second half", pch["second_half"]),
        ("Frechet distance of embeddings", c["frechet_distance"]),
        ("NLL (reference / generated)", "-" if not c["nll"] else f"{c['nll']['reference']:.4f} / "
         f"{c['nll']['generated']:.4f}"),
        (f"copies of {m['against']} (flagged pieces)", f"{m['copies']} of {len(m['pieces'])}"),
    ]
    return "<h2>Summary</h2>" + _table(("measure", "value"), [
        [f'<td class="name">{escape(k)}</td>', f"<td>{_fmt(v, 4)}</td>"] for k, v in rows])


def _calibration_rows(ev: Evaluation) -> list[tuple[str, object]]:
    """Headline OA with the reference's ceiling and floor beside it (see `evaluation.calibration`)."""
    cal = ev.summary()["calibration"]
    if cal is None or not cal["separating_features"]:
        return [("headline OA", "- (reference too small to calibrate: mean over all features below)")]
    return [
        ("OA over the features that separate real from random notes (headline)", cal["headline_oa"]),
        ("real-vs-real ceiling (one half of the reference vs the other)", cal["ceiling_oa"]),
        ("random-notes floor (reference range and density)", cal["floor_oa"]),
        ("weakest separating feature", cal["weakest_feature"]),
        ("features left out of the headline (do not separate)",
         ", ".join(sorted(set(cal["features"]) - set(cal["separating_features"]))) or "none"),
    ]


def _feature_section(ev: Evaluation) -> str:
    rows = []
    cal = ev.summary()["calibration"] or {"features": {}}
    for f in ev.comparison.summary()["features"]:
        known = cal["features"].get(f["name"], {})
        values = [f["reference_mean"], f["reference_std"], f["generated_mean"], f["generated_std"],
                  f["overlap_area"], f["kl_divergence"], f["intra_reference_mean"], f["inter_mean"],
                  known.get("ceiling"), known.get("floor"), {True: "yes", False: "no"}.get(known.get("separates"))]
        rows.append([f'<td class="name">{escape(f["name"])}</td>'] + [f"<td>{_fmt(v)}</td>" for v in values]
                    + [f'<td class="name note">{escape(f["note"])}</td>'])
    intro = ('<p class="note">Yang &amp; Lerch (2020): for each feature, the overlapping area (OA) and KL '
             "divergence between the distribution of distances among reference pieces and that of distances "
             "from reference to generated pieces (Gaussian KDE). OA near 1 and KL near 0 mean the generated "
             "pieces are as close to the reference as reference pieces are to each other. The real-vs-real and "
             "random-vs-real columns calibrate each feature on this reference; only features that separate the "
             "two by more than 0.05 enter the headline.</p>")
    return "<h2>Features</h2>" + intro + _table(FEATURE_HEADERS, rows)


def _memorization_section(ev: Evaluation) -> str:
    m = ev.summary()["memorization"]
    rows, classes = [], []
    for p in m["pieces"]:
        cells = [p["n_notes"], p["fraction_found"], p["fraction_closest"], p["longest_span_notes"],
                 p["nearest"] or "-", "COPY" if p["copied"] else ""]
        rows.append([f'<td class="name">{escape(p["piece"])}</td>'] + [f"<td>{_fmt(v)}</td>" for v in cells])
        classes.append("copied" if p["copied"] else "")
    intro = (f'<p class="note">Transposition-invariant {m["ngram_tokens"]}-grams of (interval, inter-onset '
             f'interval) tokens against {escape(m["against"])}. A piece is flagged when at least '
             f'{m["thresholds"]["fraction"]:.0%} of its n-grams occur in one training piece, or when it '
             f'shares a span of {m["thresholds"]["span_notes"]} notes or more with one piece.</p>')
    headers = ("piece", "notes", "n-grams found in the set", "n-grams found in one piece",
               "longest shared span (notes)", "nearest training piece", "flag")
    return "<h2>Memorization</h2>" + intro + _table(headers, rows, classes)


def _pieces_section(pieces: PieceSet, count: int, heading: str) -> str:
    parts = [f"<h2>{escape(heading)}</h2>"]
    for piece_id, score in list(zip(pieces.ids, pieces.scores, strict=True))[:count]:
        parts.append(f"<h3>{escape(piece_id)}</h3>" + _img(plots.piano_roll_png(score, piece_id), piece_id)
                     + _audio(pieces.audio_path(piece_id)))
    return "\n".join(parts)


def evaluation_html(ev: Evaluation, reference: PieceSet, n_pieces: int = 3) -> str:
    """The report of one generated set against its reference (see module docstring)."""
    sections = [_summary_section(ev, reference), _feature_section(ev), _memorization_section(ev),
                _pieces_section(ev.generated, n_pieces, "Generated pieces"),
                _pieces_section(reference, min(n_pieces, 2), "Reference pieces"),
                "<h2>Feature distributions</h2>"]
    sections += [_img(plots.feature_png(f, ev.name), f.name) for f in ev.comparison.features]
    if ev.generated.metrics_csv is not None:
        curves = plots.learning_curves_png(ev.generated.metrics_csv)
        sections += ["<h2>Learning curves</h2>", _img(curves, "curves")]
    return _page(f"tunesmith evaluation: {ev.name} vs {reference.name}", sections)


def comparison_html(evals: Sequence[Evaluation], reference: PieceSet) -> str:
    """The side-by-side report of several runs against one reference, best value per column marked."""
    table = comparison_table([ev.summary() for ev in evals])
    headers = ["model"] + [f"{c['label']} {GOAL_SYMBOL[c['goal']]}" for c in table["columns"]]
    ref_row = ['<td class="name">reference</td>'] + [
        f"<td>{_fmt(c['reference'])}</td>" if c["goal"] == "closest" else "<td></td>"
        for c in table["columns"]]
    rows = [ref_row]
    for index, row in enumerate(table["rows"]):
        cells = [f'<td class="name">{escape(row["name"])}</td>']
        for c in table["columns"]:
            best = index in table["best"][c["key"]]
            mark = " &#9733;" if best else ""
            value = _fmt(row["values"].get(c["key"]))
            cells.append(f'<td class="{"best" if best else ""}">{value}{mark}</td>')
        rows.append(cells)
    sections = [f"<p>{len(evals)} models against {escape(reference.name)} ({len(reference.scores)} pieces); "
                f"the best value of each column is marked &#9733; ({escape(GOAL_LEGEND)}).</p>",
                _table(headers, rows), _calibration_note(evals)]
    sections += _comparison_figures(evals)
    return _page(f"tunesmith comparison against {reference.name}", sections)


def _calibration_note(evals: Sequence[Evaluation]) -> str:
    """What the headline OA means: each model's reference ceiling and floor (see `evaluation.calibration`)."""
    lines = []
    for ev in evals:
        cal = ev.summary()["calibration"]
        if cal and cal["separating_features"]:
            lines.append(f"{escape(ev.name)}: real-vs-real {_fmt(cal['ceiling_oa'])}, random notes "
                         f"{_fmt(cal['floor_oa'])} over {len(cal['separating_features'])} separating features")
    if not lines:
        return ""
    return ('<p class="note">OA (separating features) is the mean over the features that separate real music '
            "from random notes on the model's reference; for scale: " + "; ".join(lines) + ".</p>")


def _comparison_figures(evals: Sequence[Evaluation]) -> list[str]:
    out = ["<h2>Feature distributions</h2>"]
    for feature in evals[0].comparison.features:
        if feature.is_scalar and len(feature.reference):
            models = {ev.name: ev.comparison.feature(feature.name).generated for ev in evals}
            out.append(_img(plots.models_feature_png(feature.name, feature.reference, models), feature.name))
    for ev in evals:
        out.append(f"<h2>{escape(ev.name)}</h2>" + _pieces_section(ev.generated, 1, "first piece"))
        if ev.generated.metrics_csv is not None:
            curves = plots.learning_curves_png(ev.generated.metrics_csv, ev.name)
            out.append(_img(curves, f"{ev.name} curves"))
    return out


def check_out(out: Path) -> Path:
    """The report path if its suffix names a format (.html, .htm, .json); UserError otherwise."""
    if Path(out).suffix.lower() not in (".html", ".htm", ".json"):
        raise UserError(f"--out must end in .html or .json, not {Path(out).name}")
    return Path(out)


def write_report(out: Path, html: Callable[[], str], data: dict) -> Path:
    """Write `data` as JSON when `out` ends in .json, else the HTML that `html()` builds; returns `out`."""
    out = check_out(out)
    suffix = out.suffix.lower()
    text = json.dumps(data, indent=1, allow_nan=False) if suffix == ".json" else html()
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, text.encode("utf-8"))
    return out


def write_evaluation(ev: Evaluation, reference: PieceSet, out: Path) -> Path:
    """`tunesmith evaluate`'s report: HTML or JSON by the suffix of `out`."""
    return write_report(out, lambda: evaluation_html(ev, reference), ev.summary())


def write_comparison(evals: Sequence[Evaluation], reference: PieceSet, out: Path) -> Path:
    """`tunesmith compare`'s report: HTML or JSON (the table plus every evaluation) by the suffix of `out`."""
    data = {"reference": reference.name, "table": comparison_table([ev.summary() for ev in evals]),
            "models": [ev.summary() for ev in evals]}
    return write_report(out, lambda: comparison_html(evals, reference), data)
