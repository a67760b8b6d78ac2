"""Piano-roll pictures (PNG) of scores and MIDI files.

Time runs left to right in bars (numbered bar lines from the time signatures, beats as minor ticks),
pitch bottom to top with every C named (C4 = middle C); each track has a colour and a legend entry,
a note's opacity is its velocity, and the pitch range is fitted to the notes. Drum tracks get a lane
of their own under the roll, one row per drum sound, hits drawn as diamonds (a drum note's length
means nothing). matplotlib is imported inside the functions, through its object API and the Agg
canvas: no pyplot, no global backend switch, and `import tunesmith.io.plot` stays cheap.

Bounded work for very long files: a score with more than `MAX_SHAPES` notes is drawn as an image
with one column per pixel of the figure (each column covers a fixed number of ticks; a cell's
opacity is the mean velocity of the notes sounding in it), and one INFO log line says so; at most
`MAX_BAR_LINES` bar lines are drawn and beats are marked only up to `MAX_BEAT_BARS` bars. The figure
is at most 24 x 8 inches whatever the length, so time and memory grow with the note count only
through numpy (a 29 MB file: seconds, not minutes).
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import numpy as np
from symusic import Score

from tunesmith.core.constants import pitch_name
from tunesmith.core.errors import UserError
from tunesmith.core.score import bar_starts, note_table
from tunesmith.io.atomic import write_atomic

log = logging.getLogger(__name__)
DPI = 100
MAX_SHAPES = 20_000  # notes drawn one shape each; a score with more is drawn as an image
MAX_BAR_LINES = 200  # more bars than this: only the labelled bar lines are drawn
MAX_BEAT_BARS = 64  # beats get minor ticks and grid lines up to this many bars
MAX_BAR_LABELS = 32
MAX_LEGEND_TRACKS = 10
DRUM_COLOR = (0.15, 0.15, 0.15)  # near black: drums stand apart from the coloured pitched tracks
BLACK_KEYS = {1, 3, 6, 8, 10}  # pitch classes of the black piano keys
# General MIDI percussion key names (keys 35-81), for the drum lane.
GM_DRUMS = dict(enumerate((
    "acoustic kick", "kick", "side stick", "snare", "hand clap", "electric snare", "low floor tom",
    "closed hi-hat", "high floor tom", "pedal hi-hat", "low tom", "open hi-hat", "low-mid tom",
    "high-mid tom", "crash", "high tom", "ride", "china", "ride bell", "tambourine", "splash",
    "cowbell", "crash 2", "vibraslap", "ride 2", "high bongo", "low bongo", "mute high conga",
    "open high conga", "low conga", "high timbale", "low timbale", "high agogo", "low agogo",
    "cabasa", "maracas", "short whistle", "long whistle", "short guiro", "long guiro", "claves",
    "high wood block", "low wood block", "mute cuica", "open cuica", "mute triangle", "open triangle",
), start=35))


def plot_midi_file(midi: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Draw the MIDI file `midi` as a piano roll into the PNG `out`, titled with the file name."""
    from tunesmith.io.audio import load_midi

    _check_png(Path(out))
    return plot_score(load_midi(midi), out, title=Path(midi).name)


def plot_score(score: Score, path: str | os.PathLike, title: str | None = None) -> Path:
    """Draw `score` as a piano roll into the PNG file `path` (written atomically); returns the path.

    Raises UserError for a path not ending in .png or a score without notes (see `score_png`);
    OSError when the file cannot be written (the old file, if any, is kept).
    """
    path = Path(path)
    _check_png(path)
    data = score_png(score, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)
    return path


def score_png(score: Score, title: str | None = None) -> bytes:
    """PNG bytes of `score` as a piano roll.

    The figure is 10-24 inches wide (wider for more bars) and 6 high (+2 with drums), at 100 dpi.
    Raises UserError for a score without notes.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    notes = note_table(score)
    if len(notes["pitch"]) == 0:
        raise UserError(f"{title or 'the score'} has no notes to draw.")
    last_note_end = int((notes["start"] + notes["duration"]).max())
    # Bars until the one holding the last note is complete (a bar is under 32 whole notes long).
    bars = bar_starts(score, end_tick=last_note_end + 32 * 4 * score.ticks_per_quarter)
    end_tick = int(bars[np.searchsorted(bars, last_note_end)])
    bars = bars[bars < end_tick]
    has_drums, has_pitched = bool(notes["is_drum"].any()), bool((~notes["is_drum"]).any())
    width = float(np.clip(4 + 0.3 * len(bars), 10, 24))
    rows = [r for r, present in (("pitched", has_pitched), ("drums", has_drums)) if present]
    heights = {"pitched": 6.0, "drums": 2.0 if has_pitched else 4.0}
    fig = Figure(figsize=(width, sum(heights[r] for r in rows)), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), 1, sharex=True, squeeze=False,
                        height_ratios=[heights[r] for r in rows])[:, 0]
    colors = _track_colors(score)
    grid = _grid(end_tick, int(width * DPI)) if len(notes["pitch"]) > MAX_SHAPES else None
    if grid is not None:
        log.info("%s: %d notes drawn as an image of %d time columns (%d ticks each), not one shape per note",
                 title or "the score", len(notes["pitch"]), *grid)
    handles = []
    for ax, row in zip(axes, rows, strict=True):
        draw = _draw_pitched if row == "pitched" else _draw_drums
        handles += draw(ax, score, notes, colors, grid)
        _draw_bars(ax, score, bars, end_tick)
    beats = "minor ticks: beats; " if len(bars) <= MAX_BEAT_BARS else ""
    axes[-1].set_xlabel(f"bar  ({beats}opacity: velocity)")
    axes[0].legend(handles=_limit_legend(handles), loc="upper left", bbox_to_anchor=(1.005, 1.0),
                   fontsize="small", frameon=False)
    if title:
        axes[0].set_title(title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _check_png(path: Path) -> None:
    if path.suffix.lower() != ".png":
        raise UserError(f"cannot write {path.name}: the picture file name must end in .png.")


def _track_colors(score: Score) -> list[tuple[float, float, float]]:
    """An RGB colour per track: tab10 (tab20 past ten pitched tracks); drum tracks are near black."""
    from matplotlib import colormaps

    pitched = [i for i, t in enumerate(score.tracks) if not t.is_drum]
    cmap = colormaps["tab10" if len(pitched) <= 10 else "tab20"]
    colors = [DRUM_COLOR] * len(score.tracks)
    for n, i in enumerate(pitched):
        colors[i] = cmap(n % cmap.N)[:3]
    return colors


def _rgba(color: tuple[float, float, float], velocity: np.ndarray) -> np.ndarray:
    """(n, 4) colours: `color` with opacity rising from 0.25 (velocity 1) to 1 (velocity 127)."""
    rgba = np.empty((len(velocity), 4))
    rgba[:, :3] = color
    rgba[:, 3] = 0.25 + 0.75 * np.clip(velocity, 1, 127) / 127
    return rgba


def _grid(end_tick: int, columns: int) -> tuple[int, int]:
    """(columns, ticks per column) of an image covering ticks [0, end_tick) in at most `columns`."""
    ticks = max(1, -(-end_tick // max(columns, 1)))
    return -(-end_tick // ticks), ticks


def _draw_pitched(ax, score: Score, notes: dict, colors: list, grid: tuple[int, int] | None) -> list:
    """Notes of pitched tracks as rectangles (x: ticks, y: MIDI pitch), or painted into one image
    when `grid` (columns, ticks per column) is given; returns legend handles."""
    from matplotlib.collections import PolyCollection
    from matplotlib.patches import Patch

    handles = []
    image = np.zeros((128, grid[0], 4)) if grid else None
    for index, track in enumerate(score.tracks):
        pick = (notes["track"] == index) & ~notes["is_drum"]
        if not pick.any():
            continue
        x0, x1 = notes["start"][pick], notes["start"][pick] + notes["duration"][pick]
        velocity = notes["velocity"][pick]
        if image is not None:
            _paint(image, notes["pitch"][pick], x0, x1, velocity, colors[index], grid[1])
        else:
            y = notes["pitch"][pick].astype(float)
            verts = np.stack([np.stack(c, axis=1) for c in
                              ((x0, y - 0.4), (x0, y + 0.4), (x1, y + 0.4), (x1, y - 0.4))], axis=1)
            ax.add_collection(PolyCollection(verts, facecolors=_rgba(colors[index], velocity),
                                             edgecolors=(*colors[index], 0.9), linewidths=0.4))
        handles.append(Patch(color=colors[index], label=_track_label(index, track)))
    if image is not None:
        _show_image(ax, image, grid)
    _pitch_axis(ax, notes["pitch"][~notes["is_drum"]])
    return handles


def _paint(image: np.ndarray, row: np.ndarray, start: np.ndarray, end: np.ndarray, velocity: np.ndarray,
           color: tuple[float, float, float], ticks_per_column: int) -> None:
    """Paint notes into `image` (rows, columns, RGBA): every cell a note sounds in (ticks [start, end),
    at least its first column) gets `color`, with the opacity of `_rgba` for the mean velocity of the
    notes sounding there. Difference arrays and cumulative sums: O(notes + cells), no loop per note."""
    n_rows, columns = image.shape[:2]
    row, start, end = (np.asarray(a, np.int64) for a in (row, start, end))
    first = np.minimum(start // ticks_per_column, columns - 1)
    last = np.minimum(np.maximum(end - 1, start) // ticks_per_column, columns - 1)
    on_index, off_index = row * (columns + 1) + first, row * (columns + 1) + last + 1
    size = n_rows * (columns + 1)

    def cover(weights: np.ndarray | None) -> np.ndarray:
        delta = np.bincount(on_index, weights, size) - np.bincount(off_index, weights, size)
        return delta.reshape(n_rows, columns + 1).cumsum(axis=1)[:, :columns]

    count, loudness = cover(None), cover(velocity.astype(np.float64))
    sounding = count > 0.5
    image[sounding] = _rgba(color, loudness[sounding] / count[sounding])


def _show_image(ax, image: np.ndarray, grid: tuple[int, int]) -> None:
    """Draw a painted (rows, columns, RGBA) image: row r centred on y = r, columns on their ticks."""
    columns, ticks = grid
    ax.imshow(image, origin="lower", aspect="auto", interpolation="nearest", zorder=1,
              extent=(0, columns * ticks, -0.5, image.shape[0] - 0.5))


def _pitch_axis(ax, pitches: np.ndarray) -> None:
    """Fit the y range to `pitches`, name every C (and the extremes when fewer than two Cs show),
    tick every semitone and shade the black-key rows, as on a piano roll."""
    lo, hi = int(pitches.min()) - 2, int(pitches.max()) + 2
    ax.set_ylim(lo - 0.5, hi + 0.5)
    labelled = [p for p in range(lo, hi + 1) if p % 12 == 0]
    if len(labelled) < 2:
        labelled = sorted({int(pitches.min()), int(pitches.max()), *labelled})
    ax.set_yticks(labelled, [pitch_name(p) for p in labelled])
    ax.set_yticks(range(lo, hi + 1), minor=True)
    for p in range(lo, hi + 1):
        if p % 12 in BLACK_KEYS:
            ax.axhspan(p - 0.5, p + 0.5, color="0.93", zorder=0, linewidth=0)
    ax.set_ylabel("pitch")


def _draw_drums(ax, score: Score, notes: dict, colors: list, grid: tuple[int, int] | None) -> list:
    """Drum hits as diamonds, one row per GM drum sound present (painted into an image, one column
    per hit, when `grid` is given); returns legend handles."""
    from matplotlib.lines import Line2D

    drum = notes["is_drum"]
    keys = np.unique(notes["pitch"][drum])
    rows = np.searchsorted(keys, notes["pitch"][drum])
    start, velocity = notes["start"][drum], notes["velocity"][drum]
    if grid is not None:
        image = np.zeros((len(keys), grid[0], 4))
        _paint(image, rows, start, start + 1, velocity, DRUM_COLOR, grid[1])
        _show_image(ax, image, grid)
    else:
        ax.scatter(start, rows, c=_rgba(DRUM_COLOR, velocity), marker="D", s=24, linewidths=0)
    ax.set_yticks(range(len(keys)), [GM_DRUMS.get(int(k), f"key {k}") for k in keys], fontsize="small")
    ax.set_ylim(-0.7, len(keys) - 0.3)
    ax.set_ylabel("drums")
    for index, track in enumerate(score.tracks):
        if track.is_drum and (notes["track"] == index).any():
            return [Line2D([], [], color=DRUM_COLOR, marker="D", linestyle="",
                           label=_track_label(index, track))]
    return []


def _track_label(index: int, track) -> str:
    """Legend text: the track's name (or its number) and its GM program or 'drums'."""
    name = track.name.strip() or f"track {index + 1}"
    return f"{name} (drums)" if track.is_drum else f"{name} (program {track.program})"


def _limit_legend(handles: list) -> list:
    """At most MAX_LEGEND_TRACKS entries, then one saying how many more tracks there are."""
    if len(handles) <= MAX_LEGEND_TRACKS:
        return handles
    from matplotlib.patches import Patch

    more = Patch(color="white", label=f"... {len(handles) - MAX_LEGEND_TRACKS + 1} more tracks")
    return handles[: MAX_LEGEND_TRACKS - 1] + [more]


def _draw_bars(ax, score: Score, bars: np.ndarray, end_tick: int) -> None:
    """Bar lines (numbered from 1, thinned to at most MAX_BAR_LABELS labels; past MAX_BAR_LINES bars
    only the labelled lines are drawn) and, up to MAX_BEAT_BARS bars, beat minor ticks and grid lines,
    from tick 0 to `end_tick`."""
    ax.set_xlim(-0.005 * end_tick, end_tick)  # a sliver of room for a hit on tick 0
    step = next(s for s in (1, 2, 4, 5, 10, 20, 25, 50, 100, 200, 500, 1000, 10**4, 10**5, 10**9)
                if len(bars) / s <= MAX_BAR_LABELS)
    shown = np.arange(0, len(bars), step)
    lines = bars if len(bars) <= MAX_BAR_LINES else bars[shown]
    ax.vlines(lines, 0, 1, transform=ax.get_xaxis_transform(), colors="0.55", linewidth=0.6, zorder=0.5)
    ax.set_xticks(bars[shown], [str(i + 1) for i in shown])
    if len(bars) <= MAX_BEAT_BARS:  # beat ticks of longer pieces grey the roll out and cost seconds
        ax.set_xticks(_beat_ticks(score, bars), minor=True)
        ax.grid(axis="x", which="minor", color="0.85", linewidth=0.4)


def _beat_ticks(score: Score, bars: np.ndarray) -> np.ndarray:
    """Tick of every beat: a bar under n/d holds n beats of 4/d quarters each."""
    tpq = score.ticks_per_quarter
    sigs = sorted((ts.time, ts.numerator, ts.denominator) for ts in score.time_signatures) or [(0, 4, 4)]
    times = np.array([s[0] for s in sigs])
    beats = []
    for bar in bars:
        _, num, den = sigs[max(0, int(np.searchsorted(times, bar, side="right")) - 1)]
        beats.append(bar + np.arange(num) * (tpq * 4 // den))
    return np.concatenate(beats)
