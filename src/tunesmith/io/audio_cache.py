"""The audio dataset cache written by `tunesmith ingest --audio`: chunked recordings in shards.

Layout of a dataset folder (the MIDI cache's, `cache.py`, with audio in the shards):

    manifest.json        format "tunesmith-audio-dataset", version, source folder, settings (sample
                         rate, channels, chunk and hop seconds, caps), the committed shards in order,
                         each with the size and blake2b-128 checksum of its two files
    shards/NNNNNN.bin    int16 little-endian PCM chunks back to back: (n_chunks, channels, chunk_samples),
                         zero-padded to a multiple of 64 bytes
    shards/NNNNNN.json   the shard's pieces (id = sha256 of the file's bytes, path, first chunk, chunk
                         count) and the ingest record of every file it decided
    report.json, quarantine.txt, .ingest.lock   as for MIDI

A shard is written .bin, .json, then the manifest, each atomically (`io.atomic`), so a kill loses at
most the shard being filled; files no manifest lists are removed when a writer opens the folder. Its
checksums are checked when a writer or a reader opens it: a damaged shard is a UserError naming it,
or with `repair` is dropped and its files ingested again. MIDI readers refuse this format by its name.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tunesmith.core.errors import UserError
from tunesmith.io.atomic import write_atomic
from tunesmith.io.cache import SHARD_NAME, damage_error
from tunesmith.io.cache_checksums import checksum_bytes, shard_damage
from tunesmith.io.cache_writer import DatasetWriter, _lock_folder, _sweep_temp_files, _write_arrays

FORMAT, VERSION = "tunesmith-audio-dataset", 1
PCM_SCALE = 32767.0  # int16 full scale


def read_audio_manifest(out: Path) -> dict | None:
    """The manifest of audio dataset `out`, None when there is none; UserError when it is not ours or unusable."""
    file = out / "manifest.json"
    if not file.exists():
        return None
    try:
        manifest = json.loads(file.read_bytes())
    except (OSError, ValueError):
        raise UserError(f"{file} cannot be read as JSON; ingest into a new folder, or use --repair") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise UserError(f"{out} is not an audio dataset of this tunesmith version (its manifest says "
                        f"{manifest.get('format') if isinstance(manifest, dict) else 'nothing'}); use another folder")
    shards = manifest.get("shards")
    if not isinstance(shards, list) or not all(isinstance(s, dict) and SHARD_NAME.fullmatch(str(s.get("name")))
                                               for s in shards):
        raise UserError(f"{file} has a damaged shard list; ingest into a new folder")
    return manifest


class AudioDatasetWriter(DatasetWriter):
    """Append-only writer: buffers file records and chunks, commits shards. `files` (path -> latest
    record) and `by_sha` (sha256 -> first record with that content) describe everything committed.
    Locking, damage checks, orphan removal and commits are the MIDI writer's; the manifest (with the
    audio settings, fixed per dataset), the buffer and the shard layout are this one's."""

    def __init__(self, out: Path, source: str, settings: dict, shard_chunks: int = 256,
                 shard_files: int = 512, repair: bool = False):
        self.out, self.folder = Path(out), Path(out) / "shards"
        self.shard_chunks, self.shard_files = shard_chunks, shard_files
        self.files: dict[str, dict] = {}
        self.by_sha: dict[str, dict] = {}
        self._records, self._pieces, self._chunks = [], [], []
        self.repaired: list[str] = []
        self.limits_changed = False  # settings are fixed per dataset (another setting is a UserError)
        self._open_locked(source, settings, repair)

    def _open(self, source: str, settings: dict, repair: bool) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self._lock = _lock_folder(self.out)
        _sweep_temp_files(self.out)
        try:
            manifest = read_audio_manifest(self.out)
        except UserError:
            if not repair:
                raise
            manifest = None  # --repair: an unusable manifest rebuilds the whole dataset
        if manifest is not None and manifest.get("source") != source:
            raise UserError(f"--out {self.out} was built from {manifest.get('source')}, not {source}: "
                            "use another folder")
        if manifest is not None and manifest.get("settings") != settings:
            old = manifest.get("settings") or {}
            changed = ", ".join(f"{k} {old.get(k)} (now {v})" for k, v in settings.items() if old.get(k) != v)
            raise UserError(f"--out {self.out} was built with other settings: {changed}; use another folder")
        self.folder.mkdir(exist_ok=True)
        self.manifest = manifest or {"format": FORMAT, "version": VERSION, "source": source,
                                     "settings": settings, "shards": []}
        self.repaired = self._drop_damaged(repair)
        self.commit_manifest()
        self._load_committed()
        self._remove_orphans()

    def add(self, record: dict, chunks: np.ndarray | None = None) -> None:
        """Buffer a file's record, with its int16 chunks (k, channels, samples) when its status is 'ok'."""
        self._records.append(record)
        if chunks is not None:
            self._pieces.append((record, len(chunks)))
            self._chunks.append(chunks)
        if record["sha256"]:
            self.by_sha.setdefault(record["sha256"], record)

    @property
    def full(self) -> bool:
        return len(self._records) >= self.shard_files or sum(len(c) for c in self._chunks) >= self.shard_chunks

    def _take_buffer(self) -> tuple:
        buffered = (self._records, self._pieces, self._chunks)
        self._records, self._pieces, self._chunks = [], [], []
        return buffered

    def _commit(self, records: list[dict], counted: list[tuple[dict, int]], chunks: list[np.ndarray]) -> None:
        """Write `records` and the pieces' `chunks` (with each piece's chunk count) as the next shard."""
        name = f"{1 + max((int(s['name']) for s in self.manifest['shards']), default=-1):06d}"
        pieces, first = [], 0
        for record, count in counted:
            pieces.append({"id": record["sha256"], "path": record["path"], "first": first, "chunks": count})
            first += count
        pcm = [np.concatenate(chunks).astype("<i2", copy=False)] if chunks else []
        bin_check = _write_arrays(self.folder / f"{name}.bin", pcm) if pcm else None  # padded to 64 bytes
        index = json.dumps({"pieces": pieces, "files": records}).encode()
        write_atomic(self.folder / f"{name}.json", index)
        self.manifest["shards"].append({"name": name, "pieces": len(pieces), "chunks": first,
                                        "files": len(records), "bin": bin_check,
                                        "json": checksum_bytes(index)})
        self.commit_manifest()
        for record in records:
            self.files[record["path"]] = record


class AudioDataset:
    """Read access to an audio dataset: `len` (pieces), `paths`, `piece_ids`, `chunks(i)` -> float32
    (k, channels, samples) in [-1, 1], `settings` (sample_rate, channels, chunk_seconds, ...).
    Pieces are ordered by source path; a file edited between runs shows only its latest version."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        manifest = read_audio_manifest(self.path)
        if manifest is None:
            raise UserError(f"{self.path} is not an audio dataset folder (no manifest.json)")
        damaged = {s["name"]: why for s in manifest["shards"] if (why := shard_damage(self.path / "shards", s))}
        if damaged:
            raise damage_error(self.path, manifest, damaged)
        self.settings = manifest["settings"]
        channels = self.settings["channels"]
        samples = int(round(self.settings["chunk_seconds"] * self.settings["sample_rate"]))
        indexes, self._pcm = [], []
        for shard in manifest["shards"]:
            indexes.append(json.loads((self.path / "shards" / f"{shard['name']}.json").read_text()))
            raw = np.memmap(self.path / "shards" / f"{shard['name']}.bin", "<i2", mode="r") if shard["bin"] \
                else np.zeros(0, "<i2")
            count = sum(p["chunks"] for p in indexes[-1]["pieces"])  # the file is padded to 64 bytes
            self._pcm.append(raw[: count * channels * samples].reshape(count, channels, samples))
        latest = {rec["path"]: rec["sha256"] for index in indexes for rec in index["files"]}
        live, entries = set(latest.values()), {}
        for s, index in enumerate(indexes):
            for piece in index["pieces"]:
                if piece["id"] in live and piece["id"] not in entries:
                    entries[piece["id"]] = (piece["path"], s, piece["first"], piece["chunks"])
        self._entries = sorted(entries.items(), key=lambda item: item[1][0])

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def paths(self) -> list[str]:
        return [path for _, (path, _, _, _) in self._entries]

    @property
    def piece_ids(self) -> list[str]:
        return [pid for pid, _ in self._entries]

    def chunks(self, i: int) -> np.ndarray:
        """float32 (k, channels, samples) of piece i, in [-1, 1]."""
        _, (_, shard, first, count) = self._entries[i]
        return self._pcm[shard][first: first + count].astype(np.float32) / np.float32(PCM_SCALE)
