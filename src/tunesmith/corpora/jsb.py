"""JSB Chorales benchmark files (Boulanger-Lewandowski et al. 2012) -> piano rolls and Scores.

The files map split names (`train`, `valid`, `test`) to pieces; a piece is a list of time steps and a
step is the list of MIDI pitches sounding in it (21..108). Steps are quarter notes in the canonical
files (16th notes in Coconet's variant); the file does not say which, see `grid_from_name`.
Two encodings load: JSON (as converted by czhuang/JSB-Chorales-dataset) and the original Python
pickle, read by an unpickler that refuses every global, so only lists, tuples, dicts, strings and
numbers built by the pickle opcodes themselves can load: a pickle cannot run code here.

The canonical split is 229 / 76 / 77 pieces (`CANONICAL_SIZES`); `load_jsb(path, canonical=True)`
insists on it, `split_report` describes any file.
"""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import numpy as np
from symusic import Score

from tunesmith.core.constants import DEFAULT_QPM, DEFAULT_TPQ, PIANO_HIGH, PIANO_KEYS, PIANO_LOW
from tunesmith.core.errors import UserError
from tunesmith.core.score import make_track, new_score

SPLITS = ("train", "valid", "test")
CANONICAL_SIZES = {"train": 229, "valid": 76, "test": 77}
MAX_FILE_BYTES = 256 * 2**20  # the canonical files are about 1-5 MB


class _NoGlobalsUnpickler(pickle.Unpickler):
    """An unpickler that loads plain data only: any class or function reference is refused."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(
            f"the pickle asks for {module}.{name}, and only plain data is allowed (use the JSON version)"
        )

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("the pickle uses persistent ids, and only plain data is allowed")


def read_jsb_file(path: Path | str) -> dict:
    """The raw split dict of a JSB file (JSON or pickle, chosen by content), not yet validated."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"JSB file {path} does not exist or is not a file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise UserError(f"JSB file {path} is larger than {MAX_FILE_BYTES >> 20} MB, so it is not a JSB file")
    data = path.read_bytes()
    if path.suffix.lower() == ".json" or data.lstrip()[:1] in (b"{", b"["):  # "[" is no pickle opcode
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as error:
            raise UserError(f"JSB file {path} is not valid JSON ({error})") from None
    try:
        return _NoGlobalsUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as error:  # a corrupt pickle can raise many types; no code ran (no globals)
        raise UserError(f"JSB file {path} is neither JSON nor a plain-data pickle ({error})") from None


def load_jsb(path: Path | str, canonical: bool = False) -> dict[str, list[np.ndarray]]:
    """Each split of a JSB file as a list of bool piano rolls of shape (T steps, 88 keys, MIDI 21..108).

    Raises UserError for anything but a dict of known splits holding lists of steps of integer pitches
    in 21..108; with `canonical`, also unless every split present has its canonical size.
    """
    raw = read_jsb_file(path)
    if not isinstance(raw, dict) or not raw:
        raise UserError(f"JSB file {path} must hold a mapping of splits ({', '.join(SPLITS)})")
    unknown = [str(key) for key in raw if key not in SPLITS]
    if unknown:
        raise UserError(f"JSB file {path} has unknown splits {unknown}; expected {', '.join(SPLITS)}")
    rolls = {split: [_piece_roll(p, f"{split} piece {i}") for i, p in enumerate(_as_list(raw[split], split))]
             for split in SPLITS if split in raw}
    if canonical:
        wrong = {s: len(r) for s, r in rolls.items() if len(r) != CANONICAL_SIZES[s]}
        if wrong:
            raise UserError(f"JSB file {path} is not the canonical split: {split_report(rolls)}")
    return rolls


def _as_list(value, where: str) -> list:
    if not isinstance(value, list | tuple):
        raise UserError(f"JSB {where} must be a list, got {type(value).__name__}")
    return list(value)


def _piece_roll(piece, where: str) -> np.ndarray:
    """(T, 88) bool roll of one piece given as a list of steps of MIDI pitches."""
    steps = _as_list(piece, where)
    roll = np.zeros((len(steps), PIANO_KEYS), dtype=bool)
    for t, step in enumerate(steps):
        for pitch in _as_list(step, f"{where} step {t}"):
            roll[t, _pitch(pitch, f"{where} step {t}") - PIANO_LOW] = True
    return roll


def _pitch(value, where: str) -> int:
    # An integral float (60.0) is the same pitch exactly; bools and fractions are not pitches.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"JSB {where} holds {value!r}, which is not an integer MIDI pitch")
    if not PIANO_LOW <= value <= PIANO_HIGH:
        raise UserError(f"JSB {where} holds pitch {value}, outside the piano range {PIANO_LOW}..{PIANO_HIGH}")
    return value


def split_report(rolls: dict[str, list[np.ndarray]]) -> str:
    """One line: pieces and steps per split, and whether the piece counts are the canonical ones."""
    parts = [f"{s} {len(r)} pieces / {sum(len(x) for x in r)} steps" for s, r in rolls.items()]
    canonical = all(len(r) == CANONICAL_SIZES[s] for s, r in rolls.items())
    note = "canonical split sizes" if canonical else "not the canonical 229/76/77 split"
    return f"{', '.join(parts)} ({note})"


def grid_from_name(path: Path | str) -> int | None:
    """Steps per quarter guessed from a file name: 4 for '16th', 1 for 'quarter' or the original pickle."""
    name = Path(path).name.lower()
    if "16th" in name or "sixteenth" in name:
        return 4
    if "quarter" in name or name == "jsb chorales.pickle":
        return 1
    return None


def _ticks_per_step(steps_per_quarter: int, tpq: int) -> int:
    if steps_per_quarter < 1 or tpq % steps_per_quarter:
        raise UserError(f"steps per quarter must divide {tpq}, got {steps_per_quarter}")
    return tpq // steps_per_quarter


def jsb_to_score(piece: np.ndarray, steps_per_quarter: int = 1, qpm: float = DEFAULT_QPM) -> Score:
    """A one-track Score (480 ticks per quarter, 4/4) of a (T, 88) roll; a run of on-steps is one note.

    JSB rolls cannot tell a held note from a repeated one, so consecutive steps merge.
    """
    roll = np.asarray(piece, dtype=bool)
    if roll.ndim != 2 or roll.shape[1] != PIANO_KEYS:
        raise UserError(f"a JSB piece must have shape (steps, {PIANO_KEYS}), got {roll.shape}")
    step = _ticks_per_step(steps_per_quarter, DEFAULT_TPQ)
    padded = np.pad(roll, ((1, 1), (0, 0))).astype(np.int8)
    change = np.diff(padded, axis=0)  # +1 where a run starts, -1 one step after it ends
    on_t, on_key = np.nonzero(change.T == 1)[::-1]  # ordered by key, then time
    off_t, _ = np.nonzero(change.T == -1)[::-1]
    score = new_score(DEFAULT_TPQ, qpm)
    track = make_track(on_key + PIANO_LOW, on_t * step, (off_t - on_t) * step, name="JSB chorale")
    score.tracks.append(track)
    return score


def score_to_jsb(score: Score, steps_per_quarter: int = 1, n_steps: int | None = None) -> np.ndarray:
    """(T, 88) bool roll of a Score's pitched notes on the grid; notes outside 21..108 are left out.

    A note covers the steps from its start to its end, each rounded to the nearest step, at least one.
    T is `n_steps` when given (notes past it are cut), else the step after the last note's end.
    """
    step = _ticks_per_step(steps_per_quarter, score.ticks_per_quarter)
    starts, ends, keys = [], [], []
    for track in score.tracks:
        if track.is_drum:
            continue
        a = track.notes.numpy()
        keep = (a["pitch"] >= PIANO_LOW) & (a["pitch"] <= PIANO_HIGH)
        start = np.round(a["time"][keep] / step).astype(np.int64)
        end = np.round((a["time"][keep] + a["duration"][keep]) / step).astype(np.int64)
        starts.append(start)
        ends.append(np.maximum(end, start + 1))
        keys.append(a["pitch"][keep].astype(np.int64) - PIANO_LOW)
    start, end, key = (np.concatenate(x) if x else np.zeros(0, np.int64) for x in (starts, ends, keys))
    total = int(n_steps) if n_steps is not None else int(end.max(initial=0))
    roll = np.zeros((total, PIANO_KEYS), dtype=bool)
    for s, e, k in zip(start.tolist(), np.minimum(end, total).tolist(), key.tolist(), strict=True):
        roll[s:e, k] = True
    return roll


def jsb_scores(
    path: Path | str, split: str | None = None, steps_per_quarter: int | None = None
) -> list[tuple[str, Score]]:
    """`(piece_id, Score)` of a JSB file (one split or all), ids like 'train/007', in file order.

    The grid defaults to the one the file name tells (`grid_from_name`), else quarter notes.
    """
    rolls = load_jsb(path)
    if split is not None and split not in rolls:
        raise UserError(f"JSB file {path} has no split {split!r}; it has {', '.join(rolls)}")
    grid = steps_per_quarter or grid_from_name(path) or 1
    chosen = [split] if split is not None else list(rolls)
    return [(f"{s}/{i:03d}", jsb_to_score(roll, grid)) for s in chosen for i, roll in enumerate(rolls[s])]
