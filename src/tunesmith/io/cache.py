"""The ingest dataset cache: sharded, memory-mapped note arrays plus a manifest. Reader side.

Layout of a dataset folder (written by `cache_writer.DatasetWriter`):

    manifest.json        format, version, source folder, limits, the committed shards in order
    shards/NNNNNN.bin    the shard's arrays, each 64-byte aligned, raw little-endian
    shards/NNNNNN.json   the shard's array layout, its pieces (id, path, track names) and the
                         ingest record of every file it decided (path, size, mtime, sha256, status)
    report.json          the last run's report;  quarantine.txt: skipped files with their reasons
    .ingest.lock         held by the one ingest run that may write here at a time

Only shards the manifest lists exist; a shard is written .bin, .json, then manifest, each atomically.

Arrays in a shard (P pieces, T tracks, N notes, all pieces concatenated):
    notes  pitch u8, start i32 (ticks), duration i32 (ticks), velocity u8, track i16 (index in the
           piece), program u8, is_drum bool: grouped by track, in symusic's order within a track [N]
    tracks track_program u8, track_is_drum bool, track_notes i64 (notes per track)        [T]
    tempos tempo_time i32 (ticks), tempo_mspq i32 (µs per quarter)
    meters ts_time i32 (ticks), ts_numerator u8, ts_denominator u8
    index  piece_tpq i32 [P]; piece_{notes,tracks,tempos,ts} i64 [P + 1]: offsets into the above

A piece id is the sha256 of the file's bytes, so it is stable across runs and machines.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from symusic import Note, Score, Tempo, TimeSignature, Track

from tunesmith.core.errors import UserError

FORMAT, VERSION = "tunesmith-dataset", 1
ALIGN = 64  # bytes; every array starts on a cache-line boundary
NOTE_DTYPES = {"pitch": np.uint8, "start": np.int32, "duration": np.int32, "velocity": np.uint8,
               "track": np.int16, "program": np.uint8, "is_drum": np.bool_}
# Arrays per piece, grouped by what their length counts; "notes" holds the per-note arrays a parser
# produces (track, program and is_drum per note are derived from the track table when a shard is packed).
GROUPS = {
    "notes": {"pitch": np.uint8, "start": np.int32, "duration": np.int32, "velocity": np.uint8},
    "tracks": {"track_program": np.uint8, "track_is_drum": np.bool_, "track_notes": np.int64},
    "tempos": {"tempo_time": np.int32, "tempo_mspq": np.int32},
    "ts": {"ts_time": np.int32, "ts_numerator": np.uint8, "ts_denominator": np.uint8},
}
PIECE_DTYPES = {name: dtype for group in GROUPS.values() for name, dtype in group.items()}


def read_manifest(path: Path) -> dict | None:
    """The manifest of dataset folder `path`, or None when it is not one."""
    try:
        manifest = json.loads((Path(path) / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(manifest, dict) and manifest.get("format") == FORMAT
    return manifest if ok else None


def is_dataset_dir(path: str | os.PathLike) -> bool:
    """True when `path` is a folder written by `tunesmith ingest` (it holds our manifest.json)."""
    return Path(path).is_dir() and read_manifest(Path(path)) is not None


def open_dataset(path: str | os.PathLike) -> DatasetCache:
    """Open an ingest dataset folder for reading; UserError when it is not one."""
    return DatasetCache(Path(path))


class _Shard:
    """One shard: its JSON index and its arrays, memory-mapped on first use."""

    def __init__(self, folder: Path, name: str):
        self.bin_path = folder / f"{name}.bin"
        self.index = json.loads((folder / f"{name}.json").read_text())
        self._arrays: dict[str, np.ndarray] | None = None

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            layout = self.index["layout"]
            raw = np.memmap(self.bin_path, np.uint8, mode="r") if layout else np.zeros(0, np.uint8)
            self._arrays = {name: raw[off : off + n * np.dtype(dt).itemsize].view(dt)
                            for name, (dt, n, off) in layout.items()}
        return self._arrays


class DatasetCache:
    """Read access to an ingest dataset: `len`, `piece_ids`, `paths`, `notes(i)`, `score(i)`.

    Pieces are ordered by source path. A piece is listed while the latest ingest record of its
    path still has its content (a file edited between runs shows only its new version).
    """

    def __init__(self, path: Path):
        manifest = read_manifest(path)
        if manifest is None:
            raise UserError(f"{path} is not a tunesmith dataset folder (no valid manifest.json)")
        self.path, self.manifest = Path(path), manifest
        self._shards = [_Shard(self.path / "shards", s["name"]) for s in manifest["shards"]]
        latest = {rec["path"]: rec["sha256"] for shard in self._shards for rec in shard.index["files"]}
        live = {sha for sha in latest.values() if sha}
        entries = {}
        for s, shard in enumerate(self._shards):
            for j, piece in enumerate(shard.index["pieces"]):
                if piece["id"] in live and piece["id"] not in entries:
                    entries[piece["id"]] = (piece["path"], s, j)
        self._entries = sorted(entries.items(), key=lambda item: item[1][0])

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def piece_ids(self) -> list[str]:
        """sha256 (hex) of each piece's file, in piece order."""
        return [pid for pid, _ in self._entries]

    @property
    def paths(self) -> list[str]:
        """Source path of each piece, relative to the ingested folder (undecodable bytes as \\xNN)."""
        return [os.fsencode(path).decode("utf-8", "backslashreplace") for _, (path, _, _) in self._entries]

    def _locate(self, i: int) -> tuple[_Shard, int]:
        _, (_, s, j) = self._entries[i]
        return self._shards[s], j

    def _slice(self, shard: _Shard, j: int, kind: str) -> slice:
        offsets = shard.arrays[f"piece_{kind}"]
        return slice(int(offsets[j]), int(offsets[j + 1]))

    def notes(self, i: int) -> dict[str, np.ndarray]:
        """The note table of piece `i` (read-only views of the memory map; see module docstring)."""
        shard, j = self._locate(i)
        rows = self._slice(shard, j, "notes")
        return {name: shard.arrays[name][rows] for name in NOTE_DTYPES}

    def tpq(self, i: int) -> int:
        """Ticks per quarter note of piece `i`."""
        shard, j = self._locate(i)
        return int(shard.arrays["piece_tpq"][j])

    def tempos(self, i: int) -> dict[str, np.ndarray]:
        """Tempo map of piece `i`: 'time' (ticks) and 'mspq' (µs per quarter)."""
        shard, j = self._locate(i)
        rows = self._slice(shard, j, "tempos")
        return {"time": shard.arrays["tempo_time"][rows], "mspq": shard.arrays["tempo_mspq"][rows]}

    def time_signatures(self, i: int) -> dict[str, np.ndarray]:
        """Meter map of piece `i`: 'time' (ticks), 'numerator', 'denominator'."""
        shard, j = self._locate(i)
        rows = self._slice(shard, j, "ts")
        return {"time": shard.arrays["ts_time"][rows], "numerator": shard.arrays["ts_numerator"][rows],
                "denominator": shard.arrays["ts_denominator"][rows]}

    def score(self, i: int) -> Score:
        """Piece `i` rebuilt as a symusic Score (ticks): tracks with name, program, drums, notes;
        tempos and time signatures. Controls, pedals, bends and lyrics are not cached."""
        shard, j = self._locate(i)
        score = Score(self.tpq(i))
        tempos, sigs = self.tempos(i), self.time_signatures(i)
        score.tempos = Tempo.from_numpy(np.array(tempos["time"]), np.array(tempos["mspq"]))
        score.time_signatures = TimeSignature.from_numpy(
            np.array(sigs["time"]), np.array(sigs["numerator"]), np.array(sigs["denominator"]))
        for track in self._tracks(shard, j):
            score.tracks.append(track)
        return score

    def _tracks(self, shard: _Shard, j: int) -> Iterator[Track]:
        arrays, tracks = shard.arrays, self._slice(shard, j, "tracks")
        names = shard.index["pieces"][j]["track_names"]
        counts = arrays["track_notes"][tracks]
        bounds = int(arrays["piece_notes"][j]) + np.concatenate([[0], np.cumsum(counts)])
        for k, (a, b) in enumerate(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)):
            row = tracks.start + k
            track = Track(names[k], int(arrays["track_program"][row]), bool(arrays["track_is_drum"][row]))
            track.notes = Note.from_numpy(
                np.array(arrays["start"][a:b]), np.array(arrays["duration"][a:b]),
                arrays["pitch"][a:b].astype(np.int8), arrays["velocity"][a:b].astype(np.int8))
            yield track

    def iter_scores(self) -> Iterator[tuple[str, Score]]:
        """Yield `(piece_id, Score)` for every piece, in piece order."""
        for i in range(len(self)):
            yield self._entries[i][0], self.score(i)

    def __repr__(self) -> str:
        return f"DatasetCache({str(self.path)!r}, pieces={len(self)})"
