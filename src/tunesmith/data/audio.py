"""Data kind "audio": a folder of recordings (or a `tunesmith ingest --audio` dataset) -> piano-key arrays
-> (chunk t, chunk t + 1) pairs.

Each file under the folder whose name is audio (`io.audio_input.AUDIO_SUFFIXES`, any depth, sorted) is
read through the guarded reader at the representation's rate and channel count (a broken file is
skipped and counted by reason), encoded once by the `pianokeys` representation into (C, K, F) keys and
cached on disk (`cache_root()/audio-keys`, keyed by the file's bytes and the representation config),
so neither a new epoch nor a new run decodes audio again. A piece id is the sha256 of the file's bytes:
a renamed or copied file is the same piece (duplicates are kept once) and its split, a hash of the id
(`data/splits.py`), never changes. Train and valid files are disjoint; nothing is concatenated.
An ingest dataset (already deduplicated, broken files already quarantined) gives its pieces' sounding
chunks joined back to back (`dataset_keys`), with the same ids (the sha256 of each source file).

Items: `data.window` frames per chunk (T), pairs starting every `data.stride` frames (default T // 2):
{"context": (C, K, T) float32 keys of frames [s, s + T), "target": keys of [s + T, s + 2T)}; pairs in
which either chunk is silent (no key above `SILENT_LEVEL`) are left out.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from tunesmith.core.errors import SkipFile, UserError
from tunesmith.corpora.cache import cache_root
from tunesmith.data.config import DataConfig
from tunesmith.data.splits import SPLIT_RULE, ids_fingerprint, split_ids, unit_hash
from tunesmith.io.atomic import write_atomic
from tunesmith.representations import get_representation
from tunesmith.representations.base import Representation

log = logging.getLogger(__name__)
SILENT_LEVEL = 0.3  # a chunk whose loudest key never reaches this (-56 dB on the db scale) is silence
CACHE_VERSION = 1


def audio_files(folder: Path) -> list[Path]:
    """Audio files under `folder` (any depth, sorted by path); a folder without any is a UserError."""
    from tunesmith.io.audio_input import is_audio_name

    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder of audio files (the audio data kind reads .wav, .flac, .ogg, "
                        ".mp3 ...; render a bundled corpus with `tunesmith corpus render bach --out DIR`)")
    files = sorted(p for p in folder.rglob("*") if is_audio_name(p.name) and p.is_file())
    if not files:
        raise UserError(f"{folder} holds no audio files (.wav, .flac, .ogg, .mp3 ...)")
    return files


def file_id(path: Path) -> str:
    """sha256 of the file's bytes (hex): the piece id."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def encode_file(path: Path, piece_id: str, rep: Representation, cache: Path | None) -> np.ndarray:
    """Keys (C, K, F) float16 of one file, from the cache when it holds them; SkipFile for a broken file."""
    from tunesmith.io.audio_input import read_audio

    key = hashlib.blake2b(f"{CACHE_VERSION}{piece_id}{json.dumps(rep.to_dict(), sort_keys=True)}".encode(),
                          digest_size=16).hexdigest()
    cached = cache / f"{key}.npy" if cache else None
    if cached is not None and cached.is_file():
        try:
            return np.load(cached, allow_pickle=False)
        except (OSError, ValueError):  # a damaged cache entry: encode again
            pass
    samples = read_audio(path, rep.config.sample_rate, rep.config.channels)
    keys = np.asarray(rep.encode_audio(samples), dtype=np.float16)  # halves memory; keys are in [0, 1]
    if cached is not None:
        _save(cached, keys)
    return keys


class ChunkPairs(Dataset):
    """(context, target) chunk pairs over per-file key arrays (C, K, F) float16; see the module docstring."""

    def __init__(self, arrays: list[np.ndarray], window: int, stride: int) -> None:
        self.arrays, self.window = arrays, window
        self.index = [(i, s) for i, keys in enumerate(arrays) for s in range(0, keys.shape[-1] - 2 * window + 1, stride)
                      if _sounds(keys[..., s : s + window]) and _sounds(keys[..., s + window : s + 2 * window])]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        file, s, t = *self.index[i], self.window
        keys = self.arrays[file]
        return {"context": keys[..., s : s + t].astype(np.float32),
                "target": keys[..., s + t : s + 2 * t].astype(np.float32)}


def _sounds(chunk: np.ndarray) -> bool:
    return bool(chunk.max(initial=0.0) >= SILENT_LEVEL)


def is_audio_dataset(folder: Path) -> bool:
    """True for a `tunesmith ingest --audio` dataset folder (its manifest names the audio format)."""
    from tunesmith.io.audio_cache import read_audio_manifest

    return (folder / "manifest.json").is_file() and read_audio_manifest(folder) is not None


def dataset_keys(folder: Path, rep: Representation, limit: int | None, cache: Path | None) -> dict[str, np.ndarray]:
    """piece id -> keys (C, K, F) float16 of an ingest dataset's pieces: each piece's chunks joined back to
    back (ingest keeps them back to back and leaves out silent ones), resampled to the representation's
    rate (soxr) and channel count, then encoded; cached like files."""
    import soxr

    from tunesmith.io.audio_cache import AudioDataset
    from tunesmith.io.audio_input import to_channels

    dataset = AudioDataset(folder)
    settings = dataset.settings
    if settings.get("hop_seconds") not in (None, settings["chunk_seconds"]):
        raise UserError(f"{folder} holds overlapping chunks (hop {settings['hop_seconds']} s); the audio data kind "
                        "needs back-to-back chunks: ingest again without a hop")
    config = json.dumps(rep.to_dict(), sort_keys=True)
    out: dict[str, np.ndarray] = {}
    for i, piece_id in enumerate(dataset.piece_ids[:limit]):
        key = hashlib.blake2b(f"{CACHE_VERSION}ingest{piece_id}{config}".encode(), digest_size=16).hexdigest()
        cached = cache / f"{key}.npy" if cache else None
        if cached is not None and cached.is_file():
            out[piece_id] = np.load(cached, allow_pickle=False)
            continue
        samples = np.concatenate(list(dataset.chunks(i)), axis=-1)  # (channels, n)
        if settings["sample_rate"] != rep.config.sample_rate:
            samples = soxr.resample(samples.T, settings["sample_rate"], rep.config.sample_rate).T
        keys = np.asarray(rep.encode_audio(to_channels(np.ascontiguousarray(samples), rep.config.channels)),
                          dtype=np.float16)
        if cached is not None:
            _save(cached, keys)
        out[piece_id] = keys
    return out


def _save(path: Path, keys: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.save(buffer, keys, allow_pickle=False)
    write_atomic(path, buffer.getvalue())


def audio_representation(cfg: DataConfig, representation: Representation | None) -> Representation:
    rep = representation or get_representation(cfg.representation, **cfg.representation_config)
    if not hasattr(rep, "encode_audio"):
        raise UserError(f"the audio data kind needs an audio representation (pianokeys), not {rep.name!r}")
    return rep


def prepare_audio_data(cfg: DataConfig, representation: Representation | None = None, cache: bool = True):
    """`cfg.source` (a folder of recordings) -> PreparedData with ChunkPairs train and valid sets."""
    from tunesmith.data.build import PreparedData, arrays_fingerprint, skip_summary

    rep = audio_representation(cfg, representation)
    source = Path(cfg.source).expanduser()
    folder = cache_root() / "audio-keys" if cache else None
    skipped: Counter = Counter()
    if is_audio_dataset(source):
        keys = dataset_keys(source, rep, cfg.limit, folder)
        by_id: dict[str, Path] = {}
    else:
        keys, by_id = {}, {}
        for path in audio_files(source):
            by_id.setdefault(file_id(path), path)  # identical bytes: one piece
            if cfg.limit and len(by_id) >= cfg.limit:
                break
    for piece_id, path in by_id.items():
        try:
            keys[piece_id] = encode_file(path, piece_id, rep, folder)
        except SkipFile as reason:
            skipped[str(reason).split(":")[0]] += 1
            log.warning("skipped %s: %s", path, reason)
    groups = split_ids(list(keys), cfg.valid_fraction, cfg.test_fraction)  # readable pieces only
    if not groups["train"] and len(groups["valid"]) >= 2:  # few files: train is never empty either
        moved = max(groups["valid"], key=unit_hash)
        groups["valid"].remove(moved)
        groups["train"].append(moved)
    encoded = {split: [keys[i] for i in groups[split]] for split in ("train", "valid")}
    stride = cfg.stride or max(1, cfg.window // 2)
    datasets = {split: ChunkPairs(arrays, cfg.window, stride) for split, arrays in encoded.items()}
    for split, data in datasets.items():
        if not len(data):
            why = f"; skipped: {skip_summary(skipped)}" if skipped else ""
            raise UserError(f"{cfg.source}: no {split} pair of two sounding {cfg.window}-frame chunks "
                            f"({len(encoded[split])} {split} file(s) read{why}); add recordings or lower data.window")
    provenance: dict[str, Any] = {
        "source": str(cfg.source), "representation": cfg.representation, "split_rule": SPLIT_RULE,
        "valid_fraction": cfg.valid_fraction, "test_fraction": cfg.test_fraction, "transpose": cfg.transpose,
        "normalize_key": cfg.normalize_key, "pieces": {k: len(v) for k, v in groups.items()},
        "train_ids_sha256": ids_fingerprint(groups["train"]), "valid_ids_sha256": ids_fingerprint(groups["valid"]),
        "train_data_blake2b": arrays_fingerprint(encoded["train"]),
        "valid_data_blake2b": arrays_fingerprint(encoded["valid"]),
        "pairs": {k: len(v) for k, v in datasets.items()}, "skipped": dict(skipped),
        "seconds": {k: sum(a.shape[-1] for a in v) * rep.config.frame_seconds for k, v in encoded.items()},
    }
    return PreparedData(rep, datasets["train"], datasets["valid"], provenance)
