"""The ingest dataset cache: sharded, memory-mapped note arrays plus a manifest. Reader side.

Layout of a dataset folder (written by `cache_writer.DatasetWriter`):

    manifest.json        format, version, source folder, limits, the committed shards in order, and
                         for each shard file its size (bytes) and checksum: {"size", "xxh3_128": hex}
                         ({"size", "blake2b": hex}, blake2b-128, in shards written before xxh3)
    shards/NNNNNN.bin    the shard's arrays, each 64-byte aligned, raw little-endian
    shards/NNNNNN.json   the shard's array layout, its pieces (id, path, track names) and the
                         ingest record of every file it decided (path, size, mtime, sha256, status)
    report.json          the last run's report;  quarantine.txt: skipped files with their reasons
    .ingest.lock         held (flock) by the one ingest run that may write here; holds its pid

Only shards the manifest lists exist; a shard is written .bin, .json, then manifest, each atomically.
Opening a dataset checks every shard file's size, and its checksum once per process (`verify`):
a damaged, truncated or missing file is one UserError that names it and the fix (`--repair`); the
checksums and per-file damage checks are in `io.cache_checksums`.

Arrays in a shard (P pieces, T tracks, N notes, all pieces concatenated):
    notes  pitch u8, start i32 (ticks), duration i32 (ticks), velocity u8: grouped by track, in
           symusic's order within a track                                                  [N]
    tracks track_program u8, track_is_drum bool, track_notes i64 (notes per track)        [T]
    tempos tempo_time i32 (ticks), tempo_mspq i32 (µs per quarter)
    meters ts_time i32 (ticks), ts_numerator u8, ts_denominator u8
    index  piece_tpq i32 [P]; piece_{notes,tracks,tempos,ts} i64 [P + 1]: offsets into the above

A piece's note table (`DatasetCache.notes`) adds track i16 (index in the piece), program u8 and is_drum
bool per note, from its tracks; format-2 shards stored those three per note (28 % of a shard's bytes,
and of what ingest writes), and are read as they are.

A piece id is the sha256 of the file's bytes, so it is stable across runs and machines.
"""

from __future__ import annotations

import json
import mmap
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from symusic import Note, Score, Tempo, TimeSignature, Track

from tunesmith.core.errors import UserError
from tunesmith.io.cache_checksums import CHECKSUMS, repair_hint, shard_damage

# Version 2 added the per-file sizes and checksums; version 1 folders must be rebuilt (--repair).
# Version 3 stopped storing track, program and is_drum per note: a version-2 folder is read as it is,
# and becomes version 3 when an ingest adds shards to it (its old shards keep their per-note arrays).
FORMAT, VERSION, READS = "tunesmith-dataset", 3, (2, 3)
ALIGN = 64  # bytes; every array starts on a cache-line boundary
SHARD_NAME = re.compile(r"\d{6}")
OWN_FILES = ("report.json", "quarantine.txt")  # written by ingest beside the manifest
TEMP_NAME = re.compile(r"\..+\.tmp")  # what `io.atomic` leaves behind when a write is killed
NOTE_DTYPES = {"pitch": np.uint8, "start": np.int32, "duration": np.int32, "velocity": np.uint8,
               "track": np.int16, "program": np.uint8, "is_drum": np.bool_}
# Arrays per piece, grouped by what their length counts; "notes" holds the per-note arrays a parser
# produces (track, program and is_drum per note are derived from the track table when a piece is read).
GROUPS = {
    "notes": {"pitch": np.uint8, "start": np.int32, "duration": np.int32, "velocity": np.uint8},
    "tracks": {"track_program": np.uint8, "track_is_drum": np.bool_, "track_notes": np.int64},
    "tempos": {"tempo_time": np.int32, "tempo_mspq": np.int32},
    "ts": {"ts_time": np.int32, "ts_numerator": np.uint8, "ts_denominator": np.uint8},
}
PIECE_DTYPES = {name: dtype for group in GROUPS.values() for name, dtype in group.items()}
# The names a shard's layout may hold, as one string object each (see `_Shard`).
_LAYOUT_NAMES = {name: name for name in [*PIECE_DTYPES, *NOTE_DTYPES, "piece_tpq", *(f"piece_{g}" for g in GROUPS)]}


# ---------------------------------------------------------------- the manifest and the folder


def load_manifest(path: Path) -> dict:
    """The manifest of dataset folder `path`, checked; UserError naming what is wrong and the fix."""
    file = Path(path) / "manifest.json"
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise UserError(_no_manifest(Path(path))) from None
    except OSError as error:
        raise UserError(f"cannot read {file}: {error.strerror or error}") from None
    try:
        manifest = json.loads(data)
    except ValueError:
        what = "empty" if not data.strip() else "not valid JSON (truncated or damaged)"
        raise UserError(f"{file} is {what}; {repair_hint(Path(path), None)}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserError(f"{file} is not a tunesmith dataset manifest; {repair_hint(Path(path), None)}")
    source = manifest.get("source") if isinstance(manifest.get("source"), str) else None
    if manifest.get("version") not in READS:
        raise UserError(f"{path} was written by another tunesmith version (dataset format "
                        f"{manifest.get('version')!r}, this one reads {' and '.join(map(str, READS))}); "
                        f"{repair_hint(Path(path), source)}")
    if not _valid_shard_list(manifest.get("shards")):
        raise UserError(f"{file} has a damaged shard list; {repair_hint(Path(path), source)}")
    return manifest


def _valid_shard_list(shards) -> bool:
    def valid_file(entry) -> bool:
        return (isinstance(entry, dict) and isinstance(entry.get("size"), int)
                and any(isinstance(entry.get(name), str) for name in CHECKSUMS))

    return isinstance(shards, list) and all(
        isinstance(s, dict) and isinstance(s.get("name"), str) and SHARD_NAME.fullmatch(s["name"])
        and valid_file(s.get("json")) and (s.get("bin") is None or valid_file(s["bin"])) for s in shards)


def _no_manifest(path: Path) -> str:
    if folder_state(path) == "unfinished":
        return (f"{path} holds no data yet: the ingest that created it stopped before its first shard; "
                f"run `tunesmith ingest SRC_DIR --out {path}` to continue it")
    if folder_state(path) == "damaged":
        return f"{path}/manifest.json is missing, so its shards cannot be trusted; {repair_hint(path, None)}"
    return f"{path} is not a tunesmith dataset folder (no manifest.json)"


def read_manifest(path: Path) -> dict | None:
    """The manifest of dataset folder `path`, or None when it has none or it is unusable."""
    try:
        return load_manifest(Path(path))
    except UserError:
        return None


def folder_state(path: str | os.PathLike) -> str:
    """What `path` holds, for ingest and the readers:

    'absent' or 'empty'; 'dataset' (it has a manifest.json, whatever its state); 'unfinished' (only
    what an ingest run creates before its first manifest: shards/ without shard files, the lock,
    temp files); 'damaged' (shard files, maybe a report, but no manifest); 'other' (a file, or a
    folder of other things).
    """
    path = Path(path)
    if not path.exists():
        return "absent"
    if not path.is_dir():
        return "other"
    everything = {entry.name for entry in os.scandir(path)}
    if "manifest.json" in everything:
        return "dataset"
    names = {name for name in everything if not TEMP_NAME.fullmatch(name)} - {".ingest.lock", *OWN_FILES}
    if not names:
        return "unfinished" if everything else "empty"
    if names != {"shards"} or not (path / "shards").is_dir():
        return "other"
    stems = {entry.name.split(".")[0] for entry in os.scandir(path / "shards") if not entry.name.startswith(".")}
    return "damaged" if any(SHARD_NAME.fullmatch(stem) for stem in stems) else "unfinished"


def is_dataset_dir(path: str | os.PathLike) -> bool:
    """True when `path` is a folder written by `tunesmith ingest`, complete or not (opening an
    incomplete or damaged one raises a UserError that says what to do)."""
    return folder_state(path) in ("dataset", "unfinished", "damaged")


def open_dataset(path: str | os.PathLike, verify: bool | None = None) -> DatasetCache:
    """Open an ingest dataset folder for reading; UserError when it is not one or it is damaged.

    verify: None (default) hashes each shard file once per process; True hashes again; False checks
    sizes only. Sizes are always checked.
    """
    return DatasetCache(Path(path), verify)


def _blob(texts: list[str]) -> tuple[bytes, np.ndarray]:
    """Strings as one UTF-8 blob (lone surrogates kept) and the int64 end of each: one Python object
    for all of them, so none of them pins an allocator arena (see `DatasetCache._index_pieces`)."""
    encoded = [text.encode("utf-8", "surrogatepass") for text in texts]
    return b"".join(encoded), np.cumsum([len(e) for e in encoded], dtype=np.int64)


def _unblob(blob: bytes, ends: np.ndarray) -> list[str]:
    """The strings `_blob` packed."""
    bounds = [0, *ends.tolist()]
    return [blob[a:b].decode("utf-8", "surrogatepass") for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


class _Shard:
    """One shard: its layout, its track names and its arrays (memory-mapped on first use).

    What stays resident is a few hundred bytes per shard plus ~10 bytes per track: the names as one
    UTF-8 blob with their ends (track row k of the shard, in `piece_tracks` order), not a Python string
    or tuple per piece.
    """

    def __init__(self, folder: Path, name: str, index: dict):
        self.bin_path = folder / f"{name}.bin"
        self.layout = {_LAYOUT_NAMES.get(key) or sys.intern(key): (np.dtype(dt), int(n), int(off))
                       for key, (dt, n, off) in index["layout"].items()}
        self._names, self._name_ends = _blob([n for p in index["pieces"] for n in p["track_names"]])
        self._arrays: dict[str, np.ndarray] | None = None
        self._map: mmap.mmap | None = None

    def track_name(self, row: int) -> str:
        """Name of the shard's track `row` (an index into its track arrays)."""
        start = int(self._name_ends[row - 1]) if row else 0
        return self._names[start : int(self._name_ends[row])].decode("utf-8", "surrogatepass")

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            raw = np.zeros(0, np.uint8)
            if self.layout:
                with open(self.bin_path, "rb") as handle:
                    self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
                raw = np.frombuffer(self._map, np.uint8)
            self._arrays = {name: raw[off : off + n * dt.itemsize].view(dt)
                            for name, (dt, n, off) in self.layout.items()}
        return self._arrays

    def release_pages(self) -> None:
        """Drop this process's resident pages of the mapped file; the map stays, and the next read
        faults them back in from the page cache (where madvise is missing: drop the map)."""
        if self._map is None:
            return
        try:
            self._map.madvise(mmap.MADV_DONTNEED)
        except (AttributeError, OSError):  # no madvise or no MADV_DONTNEED on this system
            self._arrays = self._map = None


def damaged_shards(path: Path, manifest: dict, verify: bool | None = None) -> dict[str, str]:
    """{shard name: why its files are not as committed} for the shards of dataset `path` (see
    `shard_damage`; `verify` as in `open_dataset`)."""
    return {shard["name"]: reason for shard in manifest["shards"]
            if (reason := shard_damage(path / "shards", shard, verify))}


def damage_error(path: Path, manifest: dict, damaged: dict[str, str]) -> UserError:
    """One sentence naming the first damaged shard file (and how many more) and the fix."""
    more = f" (and {len(damaged) - 1} more damaged shard(s))" if len(damaged) > 1 else ""
    first = next(iter(damaged.values()))
    return UserError(f"dataset {path} is damaged: {first}{more}; {repair_hint(path, manifest.get('source'))}")


class DatasetCache:
    """Read access to an ingest dataset: `len`, `piece_ids`, `paths`, `notes(i)`, `score(i)`.

    Pieces are ordered by source path. A piece is listed while the latest ingest record of its
    path still has its content (a file edited between runs shows only its new version).
    """

    def __init__(self, path: Path, verify: bool | None = None):
        self.path = Path(path)
        self.manifest = manifest = load_manifest(self.path)
        if damaged := damaged_shards(self.path, manifest, verify):
            raise damage_error(self.path, manifest, damaged)
        try:
            self._index_pieces(manifest["shards"])
        except OSError as error:  # the files changed since they were checked
            raise UserError(f"cannot read dataset {self.path}: {error.strerror or error}") from None

    def _index_pieces(self, shards: list[dict]) -> None:
        """Read the shards' JSON indexes; keep the live pieces in path order as arrays: ids (sha256 hex as
        64 bytes), (shard, row) and the paths as one UTF-8 blob with ends (~90 bytes per piece).

        Shard by shard, each index's records become a few arrays and blobs before the next is read, so
        the parsed JSON of one shard at a time is alive. Small objects kept while records of every shard
        accumulated would each pin an allocator arena among them: resident memory stayed ~0.7 KB per
        piece higher after the records were dropped, and grew with the collection.
        """
        self._shards, files, pieces = [], [], []
        for entry in shards:
            index = json.loads((self.path / "shards" / f"{entry['name']}.json").read_bytes())
            self._shards.append(_Shard(self.path / "shards", entry["name"], index))
            records, listed = index["files"], index["pieces"]
            files.append((_blob([r["path"] for r in records]), _blob([r["sha256"] or "" for r in records])))
            pieces.append((_blob([p["path"] for p in listed]), np.array([p["id"] for p in listed], "S64")))
            del index, records, listed
        latest = {path: sha for paths, shas in files for path, sha in zip(_unblob(*paths), _unblob(*shas), strict=True)}
        live = {sha.encode("ascii", "replace") for sha in latest.values() if sha}
        del latest, files
        kept, seen = [], set()
        for s, (paths, ids) in enumerate(pieces):
            for j, (path, piece_id) in enumerate(zip(_unblob(*paths), ids.tolist(), strict=True)):
                if piece_id in live and piece_id not in seen:  # a piece listed twice: its first copy
                    seen.add(piece_id)
                    kept.append((path, s, j, piece_id))
        del pieces, live, seen
        kept.sort(key=lambda p: p[:3])  # by path, then as committed
        self._ids = np.array([p[3] for p in kept], dtype="S64")
        self._where = np.array([p[1:3] for p in kept], dtype=np.int32).reshape(-1, 2)
        self._path_blob, self._path_ends = _blob([p[0] for p in kept])

    def __len__(self) -> int:
        return len(self._ids)

    def release_pages(self) -> None:
        """Drop the resident pages of every shard read so far. Mapped file pages count in the resident
        set: each piece read touches ~0.3 MB of them (the kernel maps pages around each one touched), so
        reads spread over many shards would keep growing it with the collection."""
        for shard in self._shards:
            shard.release_pages()

    def release_maps(self) -> None:
        """Unmap every shard (mapped again on the next read)."""
        for shard in self._shards:
            shard._arrays = shard._map = None

    @property
    def piece_ids(self) -> list[str]:
        """sha256 (hex) of each piece's file, in piece order."""
        return [pid.decode("ascii") for pid in self._ids.tolist()]

    @property
    def paths(self) -> list[str]:
        """Source path of each piece, relative to the ingested folder (undecodable bytes as \\xNN)."""
        return [os.fsencode(path).decode("utf-8", "backslashreplace")
                for path in _unblob(self._path_blob, self._path_ends)]

    def _locate(self, i: int) -> tuple[_Shard, int]:
        s, j = self._where[i].tolist()
        return self._shards[s], j

    def _slice(self, shard: _Shard, j: int, kind: str) -> slice:
        offsets = shard.arrays[f"piece_{kind}"]
        return slice(int(offsets[j]), int(offsets[j + 1]))

    def notes(self, i: int) -> dict[str, np.ndarray]:
        """The note table of piece `i`: NOTE_DTYPES arrays [notes]; pitch, start, duration and velocity are
        read-only views of the memory map, track, program and is_drum come from the piece's tracks."""
        shard, j = self._locate(i)
        arrays, rows = shard.arrays, self._slice(shard, j, "notes")
        table = {name: arrays[name][rows] for name in NOTE_DTYPES if name in arrays}
        if "track" not in table:  # format 3: one value per track, repeated over its notes
            tracks = self._slice(shard, j, "tracks")
            counts = arrays["track_notes"][tracks]
            table["track"] = np.repeat(np.arange(len(counts), dtype=np.int16), counts)
            table["program"] = np.repeat(arrays["track_program"][tracks], counts)
            table["is_drum"] = np.repeat(arrays["track_is_drum"][tracks], counts)
        return table

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
        counts = arrays["track_notes"][tracks]
        bounds = int(arrays["piece_notes"][j]) + np.concatenate([[0], np.cumsum(counts)])
        for k, (a, b) in enumerate(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)):
            row = tracks.start + k
            track = Track(shard.track_name(row), int(arrays["track_program"][row]), bool(arrays["track_is_drum"][row]))
            track.notes = Note.from_numpy(
                np.array(arrays["start"][a:b]), np.array(arrays["duration"][a:b]),
                arrays["pitch"][a:b].astype(np.int8), arrays["velocity"][a:b].astype(np.int8))
            yield track

    def iter_scores(self) -> Iterator[tuple[str, Score]]:
        """Yield `(piece_id, Score)` for every piece, in piece order."""
        for i, piece_id in enumerate(self.piece_ids):
            yield piece_id, self.score(i)

    def __repr__(self) -> str:
        return f"DatasetCache({str(self.path)!r}, pieces={len(self)})"
