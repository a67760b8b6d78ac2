"""Compact on-disk cache of a converted corpus: one `.npz` of flat note tables plus JSON metadata.

Layout (every array 1-D; `*_offsets` arrays have one more entry than the rows they index, so rows
`offsets[i]:offsets[i+1]` belong to item i):

- `meta.json` (uint8 bytes of UTF-8 JSON): format version, corpus name, tpq, converter and music21
  versions, piece `ids`, `track_names` (one per track, all pieces in order), `failed` [[id, reason]].
- tracks: `piece_track_offsets` (pieces + 1), `track_program` (uint8), `track_is_drum` (bool),
  `track_note_offsets` (tracks + 1).
- notes, grouped by track and sorted by start: `note_pitch` (uint8, MIDI), `note_start_delta` (int32
  ticks since the previous note of the same track; the first is absolute, which makes the file
  compress about 3x better), `note_duration` (int32 ticks), `note_velocity` (uint8).
- meta events per piece: `tempo_*` (time ticks, mspq = microseconds per quarter, exact in MIDI),
  `timesig_*` (time, numerator, denominator), `keysig_*` (time, key = sharps, tonality 0 major/1 minor).

Files are written atomically (`tunesmith.io.atomic.write_atomic`), read with
`allow_pickle=False`.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
from symusic import KeySignature, Note, Score, Tempo, TimeSignature, Track

from tunesmith.io.atomic import write_atomic

FORMAT_VERSION = 1
# Bump when the music21 -> Score conversion changes, so stale user caches are rebuilt.
CONVERTER_VERSION = 1
_EVENTS = {
    "tempo": (("time", np.int32), ("mspq", np.int32)),
    "timesig": (("time", np.int32), ("numerator", np.uint8), ("denominator", np.uint8)),
    "keysig": (("time", np.int32), ("key", np.int8), ("tonality", np.uint8)),
}


def cache_root() -> Path:
    """Folder for tunesmith's caches: $TUNESMITH_CACHE, else the platform's user cache dir."""
    override = os.environ.get("TUNESMITH_CACHE")
    if override:
        return Path(override)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("tunesmith"))


def corpus_cache_path(name: str) -> Path:
    """Where the user cache of corpus `name` lives."""
    return cache_root() / "corpora" / f"{name}.npz"


def pack(name: str, pieces: list[tuple[str, Score]], failed: list[tuple[str, str]], extra: dict) -> dict:
    """Arrays (see module docstring) of `pieces`, all at one tpq; `extra` is merged into the metadata."""
    tpqs = {score.ticks_per_quarter for _, score in pieces}
    if len(tpqs) > 1:
        raise ValueError(f"pieces of one cache must share one tpq, got {sorted(tpqs)}")
    cols: dict[str, list] = {k: [] for k in ("program", "is_drum", "pitch", "delta", "duration", "velocity")}
    track_names, piece_tracks, track_notes = [], [0], [0]
    events = {kind: ([0], []) for kind in _EVENTS}
    for _, score in pieces:
        for track in score.tracks:
            _pack_track(track, cols)
            track_names.append(track.name)
            track_notes.append(track_notes[-1] + len(track.notes))
        piece_tracks.append(piece_tracks[-1] + len(score.tracks))
        for kind, rows in _event_rows(score).items():
            events[kind][0].append(events[kind][0][-1] + len(rows))
            events[kind][1].extend(rows)
    meta = {
        "format": FORMAT_VERSION, "corpus": name, "tpq": tpqs.pop() if tpqs else 480,
        "converter": CONVERTER_VERSION, "ids": [piece_id for piece_id, _ in pieces],
        "track_names": track_names, "failed": [list(f) for f in failed], **extra,
    }
    arrays = {
        "meta.json": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        "piece_track_offsets": np.asarray(piece_tracks, np.int64),
        "track_program": np.asarray(cols["program"], np.uint8),
        "track_is_drum": np.asarray(cols["is_drum"], bool),
        "track_note_offsets": np.asarray(track_notes, np.int64),
        "note_pitch": _cat(cols["pitch"], np.uint8),
        "note_start_delta": _cat(cols["delta"], np.int32),
        "note_duration": _cat(cols["duration"], np.int32),
        "note_velocity": _cat(cols["velocity"], np.uint8),
    }
    for kind, fields in _EVENTS.items():
        offsets, rows = events[kind]
        arrays[f"{kind}_offsets"] = np.asarray(offsets, np.int64)
        table = np.asarray(rows, np.int64).reshape(-1, len(fields))
        for column, (field, dtype) in enumerate(fields):
            arrays[f"{kind}_{field}"] = table[:, column].astype(dtype)
    return arrays


def _cat(chunks: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(chunks).astype(dtype) if chunks else np.zeros(0, dtype)


def _pack_track(track, cols: dict[str, list]) -> None:
    notes = track.notes.numpy()
    order = np.lexsort((notes["pitch"], notes["time"]))
    start = notes["time"][order].astype(np.int64)
    cols["program"].append(track.program)
    cols["is_drum"].append(track.is_drum)
    cols["pitch"].append(notes["pitch"][order])
    cols["delta"].append(np.diff(start, prepend=0))
    cols["duration"].append(notes["duration"][order])
    cols["velocity"].append(notes["velocity"][order])


def _event_rows(score: Score) -> dict[str, list[tuple[int, ...]]]:
    return {
        "tempo": [(t.time, t.mspq) for t in score.tempos],
        "timesig": [(t.time, t.numerator, t.denominator) for t in score.time_signatures],
        "keysig": [(k.time, k.key, k.tonality) for k in score.key_signatures],
    }


def unpack(arrays, limit: int | None = None) -> tuple[dict, list[tuple[str, Score]]]:
    """(metadata, [(piece_id, Score)] of the first `limit` pieces or all) from the arrays of `pack`."""
    a = {key: arrays[key] for key in arrays}
    meta = json.loads(bytes(a["meta.json"]).decode())
    starts = a["note_start_delta"].astype(np.int64)
    pieces = []
    for index, piece_id in enumerate(meta["ids"][:limit]):
        score = Score(int(meta["tpq"]))
        _add_events(score, a, index)
        for track in range(a["piece_track_offsets"][index], a["piece_track_offsets"][index + 1]):
            score.tracks.append(_unpack_track(a, starts, meta["track_names"][track], track))
        pieces.append((piece_id, score))
    return meta, pieces


def _unpack_track(a: dict, start_deltas: np.ndarray, name: str, track: int) -> Track:
    """Track number `track` of the cache; its notes were stored sorted, so no sort is needed here."""
    lo, hi = a["track_note_offsets"][track], a["track_note_offsets"][track + 1]
    out = Track(name, int(a["track_program"][track]), bool(a["track_is_drum"][track]))
    out.notes = Note.from_numpy(
        np.cumsum(start_deltas[lo:hi]).astype(np.int32), a["note_duration"][lo:hi],
        a["note_pitch"][lo:hi].astype(np.int8), a["note_velocity"][lo:hi].astype(np.int8),
    )
    return out


def _add_events(score: Score, a: dict, index: int) -> None:
    def rows(kind: str):
        lo, hi = a[f"{kind}_offsets"][index], a[f"{kind}_offsets"][index + 1]
        return zip(*(a[f"{kind}_{field}"][lo:hi].tolist() for field, _ in _EVENTS[kind]), strict=True)

    for time, mspq in rows("tempo"):
        score.tempos.append(Tempo(time, mspq=mspq))
    for time, numerator, denominator in rows("timesig"):
        score.time_signatures.append(TimeSignature(time, numerator, denominator))
    for time, key, tonality in rows("keysig"):
        score.key_signatures.append(KeySignature(time, key, tonality))


def write_cache(path: Path, arrays: dict) -> None:
    """Write `arrays` as a compressed npz at `path`, atomically (readers never see a partial file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda handle: np.savez_compressed(handle, **arrays))


def read_cache(path: Path, limit: int | None = None) -> tuple[dict, list[tuple[str, Score]]] | None:
    """(metadata, pieces (the first `limit`)) of a cache file, or None when it is missing, unreadable or
    of another format or converter version."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        meta = json.loads(bytes(arrays["meta.json"]).decode())
        if meta.get("format") != FORMAT_VERSION or meta.get("converter") != CONVERTER_VERSION:
            return None
        return unpack(arrays, limit)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
