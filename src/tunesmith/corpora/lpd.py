"""Lakh Pianoroll Dataset (LPD-5) `.npz` files -> Score with five tracks: piano, guitar, bass, strings, drums.

The format is the one pypianoroll's `save` writes (read here with numpy and zipfile only; pypianoroll's
writers are broken under numpy 2 and are not needed):

- `info.json`, a plain zip member: `{"resolution" (or "beat_resolution" in pypianoroll < 1): steps per
  quarter-note beat, "name": str, "0": {"name", "program", "is_drum"}, "1": {...}, ...}`;
- per track i, a (T steps, 128 pitches) roll, sparse as `pianoroll_<i>_csc_data / _csc_indices /
  _csc_indptr / _csc_shape` (scipy CSC: column j = pitch j) or dense as `pianoroll_<i>`; bool when
  binarized (LPD's own files) or uint8 velocities;
- optional `tempo` (T,) or (T, 1): quarter notes per minute at each step; `downbeat` (T,) bool: bar starts.

A note is a run of consecutive steps of one pitch with one value, so a repeated note with no gap in
between reads as one long note (the roll cannot tell them apart). Binarized rolls get velocity 64,
pypianoroll's default. Source tracks go to the five groups by name (LPD-5's own names) or else by
GM program (`program_group`); each output track has its group's program from MULTITRACK_PROGRAMS.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path

import numpy as np
from symusic import Score, Tempo, TimeSignature

from tunesmith.core.constants import (
    DEFAULT_QPM,
    DEFAULT_TPQ,
    MULTITRACK_GROUPS,
    MULTITRACK_PROGRAMS,
    N_PITCHES,
    program_group,
)
from tunesmith.core.errors import UserError
from tunesmith.core.score import make_track

BINARY_VELOCITY = 64
MAX_ARRAY_BYTES = 512 * 2**20
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
# What a damaged or foreign zip raises: truncation, bad CRC or deflate data, an unknown compression
# method (NotImplementedError), encryption (RuntimeError).
_UNREADABLE = (OSError, ValueError, EOFError, KeyError, RuntimeError, NotImplementedError, zlib.error,
               zipfile.BadZipFile)
MAX_STEPS = 1_000_000  # about 6 hours at 24 steps per beat and 120 qpm (128 MB per track): longer is bogus


def read_lpd(path: Path | str) -> dict:
    """The raw content of an LPD npz: `resolution`, `name`, `tempo`, `downbeat` (arrays or None) and
    `tracks`, a list of dicts with `name`, `program`, `is_drum` and `roll` ((T, 128) bool or uint8)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"LPD file {path} does not exist or is not a file")
    try:
        info = _read_info(path)
        _check_array_sizes(path)
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files if key != "info.json"}
    except _UNREADABLE as error:
        raise UserError(f"LPD file {path} is not a readable npz file ({error or type(error).__name__})") from None
    resolution = info.get("resolution", info.get("beat_resolution"))
    if not isinstance(resolution, int) or resolution < 1:
        raise UserError(f"LPD file {path} has no valid resolution (steps per beat) in info.json")
    tracks = []
    index = 0
    while str(index) in info:
        meta = info[str(index)]
        tracks.append({
            "name": str(meta.get("name") or ""), "program": _program(meta.get("program", 0), path),
            "is_drum": bool(meta.get("is_drum", False)), "roll": _roll(arrays, f"pianoroll_{index}", path),
        })
        index += 1
    return {
        "resolution": resolution, "name": str(info.get("name") or ""), "tracks": tracks,
        "tempo": _flat(arrays.get("tempo")), "downbeat": _flat(arrays.get("downbeat")),
    }


def _check_array_sizes(path: Path) -> None:
    """Refuse the file before loading when an array's header announces more than MAX_ARRAY_BYTES
    (a few compressed bytes can claim gigabytes)."""
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if not member.endswith(".npy"):
                continue
            with archive.open(member) as handle:
                version = np.lib.format.read_magic(handle)
                if version not in _HEADER_READERS:
                    raise UserError(f"LPD file {path}: array {member} has an unknown .npy version {version}")
                shape, _, dtype = _HEADER_READERS[version](handle)
            if int(np.prod(shape, dtype=np.float64)) * dtype.itemsize > MAX_ARRAY_BYTES:
                raise UserError(f"LPD file {path}: array {member} is too large ({shape}) for a piano roll")


def _read_info(path: Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        if "info.json" not in archive.namelist():
            raise UserError(f"LPD file {path} has no info.json, so it is not a pypianoroll npz")
        try:
            info = json.loads(archive.read("info.json").decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise UserError(f"LPD file {path} has an info.json that is not valid JSON") from None
    if not isinstance(info, dict):
        raise UserError(f"LPD file {path} has an info.json that is not a JSON object")
    return info


def _program(value, path: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 128:
        raise UserError(f"LPD file {path} has a track program {value!r} outside 0..127")
    return value


def _flat(array: np.ndarray | None) -> np.ndarray | None:
    return None if array is None else np.asarray(array).reshape(-1)


def _roll(arrays: dict, name: str, path: Path) -> np.ndarray:
    """A (T, 128) roll from its dense array or its CSC parts, checked before anything is allocated."""
    if name in arrays:
        roll = arrays[name]
        if roll.ndim != 2 or roll.shape[1] != N_PITCHES or roll.shape[0] > MAX_STEPS:
            raise UserError(f"LPD file {path}: {name} has shape {roll.shape}, expected (steps, 128)")
        return roll
    try:
        parts = ("data", "indices", "indptr", "shape")
        data, indices, indptr, shape = (arrays[f"{name}_csc_{p}"] for p in parts)
    except KeyError:
        raise UserError(f"LPD file {path} lacks the piano roll {name}") from None
    steps, pitches = (int(x) for x in np.asarray(shape).reshape(-1)[:2])
    indptr = indptr.astype(np.int64)
    valid = (
        pitches == N_PITCHES and 0 <= steps <= MAX_STEPS and len(indptr) == pitches + 1 and indptr[0] == 0
        and np.all(np.diff(indptr) >= 0) and indptr[-1] == len(indices) == len(data)
        and (len(indices) == 0 or indices.min() >= 0 and indices.max() < steps)
    )
    if not valid:
        raise UserError(f"LPD file {path}: the sparse parts of {name} are inconsistent")
    roll = np.zeros((steps, pitches), dtype=data.dtype)
    roll[indices, np.repeat(np.arange(pitches), np.diff(indptr))] = data
    return roll


def roll_to_notes(roll: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(pitch, start step, duration steps, velocity) of a (T, 128) roll: runs of one nonzero value."""
    if roll.dtype == bool:
        values = roll * np.uint8(BINARY_VELOCITY)
    else:
        values = np.clip(roll, 0, 127).astype(np.uint8)
    padded = np.pad(values.T, ((0, 0), (1, 1)))  # (128, T + 2): silence before and after
    pitch, edge = np.nonzero(padded[:, 1:] != padded[:, :-1])  # value changes, by pitch then step
    same_pitch = pitch[:-1] == pitch[1:]
    start, end, key = edge[:-1][same_pitch], edge[1:][same_pitch], pitch[:-1][same_pitch]
    velocity = padded[key, start + 1]
    sounding = velocity > 0
    return key[sounding], start[sounding], (end - start)[sounding], velocity[sounding]


def lpd_to_score(content: dict) -> Score:
    """A Score of `read_lpd`'s content: the five LPD-5 tracks in MULTITRACK_GROUPS order, tempo, meter.

    Ticks per quarter are 480 when the resolution divides it (24 in LPD: 20 ticks per step), else the
    resolution itself (one tick per step).
    """
    resolution = content["resolution"]
    tpq = DEFAULT_TPQ if DEFAULT_TPQ % resolution == 0 else resolution
    step = tpq // resolution
    score = Score(tpq)
    _add_tempos(score, content["tempo"], step)
    _add_time_signatures(score, content["downbeat"], resolution, step)
    groups: dict[str, list] = {group: [] for group in MULTITRACK_GROUPS}
    for track in content["tracks"]:
        name = track["name"].strip().lower()
        group = name if name in groups else program_group(track["program"], track["is_drum"])
        groups[group].append(roll_to_notes(track["roll"]))
    for group, parts in groups.items():
        columns = zip(*parts, strict=True) if parts else [[np.zeros(0, np.int64)]] * 4
        pitch, start, duration, velocity = (np.concatenate(column) for column in columns)
        score.tracks.append(make_track(
            pitch, start * step, duration * step, velocity, program=MULTITRACK_PROGRAMS[group],
            is_drum=group == "drums", name=group.capitalize(),
        ))
    return score


def _add_tempos(score: Score, tempo: np.ndarray | None, step: int) -> None:
    """A tempo event at step 0 and wherever the per-step tempo (quarters per minute) changes."""
    if tempo is None or len(tempo) == 0:
        score.tempos.append(Tempo(0, qpm=DEFAULT_QPM))
        return
    tempo = tempo.astype(np.float64)
    if not np.all(np.isfinite(tempo)) or tempo.min() <= 0:
        raise UserError("the LPD file's tempo array holds a value that is not a positive number")
    for index in np.flatnonzero(np.diff(tempo, prepend=np.nan) != 0):
        score.tempos.append(Tempo(int(index) * step, qpm=float(tempo[index])))


def _add_time_signatures(score: Score, downbeat: np.ndarray | None, resolution: int, step: int) -> None:
    """Time signatures from the downbeat steps: a bar of n beats is n/4 (n/8, n/16 for half beats).

    The bar before the first downbeat (a pickup) takes the first full bar's meter from step 0; the
    last bar is assumed as long as the one before it. Without downbeats nothing is added (4/4 implied).
    """
    bars = np.flatnonzero(downbeat) if downbeat is not None else np.zeros(0, np.int64)
    if len(bars) < 2:
        return
    previous = None
    for index, length in zip(bars[:-1], np.diff(bars), strict=True):
        meter = _meter(int(length), resolution)
        if meter is not None and meter != previous:
            time = 0 if previous is None else int(index) * step
            score.time_signatures.append(TimeSignature(time, *meter))
            previous = meter


def _meter(bar_steps: int, resolution: int) -> tuple[int, int] | None:
    for denominator in (4, 8, 16):
        units, remainder = divmod(bar_steps * denominator, 4 * resolution)
        if remainder == 0 and 0 < units < 256:
            return units, denominator
    return None


def load_lpd(path: Path | str) -> Score:
    """Score of one LPD-5 npz file (see the module docstring for the format and the conversion)."""
    return lpd_to_score(read_lpd(path))
