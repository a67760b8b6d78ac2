"""Checksums of an ingest dataset's shard files and the damage checks that use them (see `io.cache`
for the folder layout): what the manifest records per file, and why a file no longer matches it."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import xxhash

# New shard files carry an xxh3-128 checksum (non-cryptographic, ~20x faster than blake2b: it was the
# largest CPU cost of ingest's parent per file); the manifest names the algorithm in each entry, so
# shards committed with blake2b-128 (hashlib.blake2b(digest_size=16)) are still checked as they were.
CHECKSUM = "xxh3_128"
CHECKSUMS = {"xxh3_128": xxhash.xxh3_128, "blake2b": lambda: hashlib.blake2b(digest_size=16)}
_VERIFIED: set[tuple] = set()  # (path, inode, size, mtime_ns, checksum) of files hashed in this process


def new_checksum(algorithm: str = CHECKSUM):
    """A fresh hash object (default: the CHECKSUM new shards get; feed it with `update`, read `hexdigest()`)."""
    return CHECKSUMS[algorithm]()


def checksum_bytes(data: bytes) -> dict:
    """{"size": bytes, CHECKSUM: hex} of `data`, as the manifest records a shard file."""
    hasher = new_checksum()
    hasher.update(data)
    return {"size": len(data), CHECKSUM: hasher.hexdigest()}


def checksum_of(entry: dict) -> tuple[str, str]:
    """(algorithm, hex digest) of a manifest file entry {"size", <algorithm>: hex}."""
    algorithm = next(name for name in CHECKSUMS if isinstance(entry.get(name), str))
    return algorithm, entry[algorithm]


def file_checksum(path: Path, chunk_bytes: int = 4 << 20, algorithm: str = CHECKSUM) -> str:
    """Hex checksum of the file at `path` (default algorithm: CHECKSUM), read in chunks."""
    hasher = new_checksum(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            hasher.update(chunk)
    return hasher.hexdigest()


def file_damage(path: Path, expected: dict, verify: bool | None) -> str | None:
    """Why the shard file at `path` does not match its manifest entry {"size", algorithm}, or None.

    The size is always checked; the checksum when `verify` is True, or when None and this process
    has not yet hashed this very file (same inode, size and mtime).
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return f"shards/{path.name} is missing"
    except OSError as error:
        return f"shards/{path.name} cannot be read ({error.strerror or error})"
    if not stat.S_ISREG(info.st_mode):
        return f"shards/{path.name} is not a regular file"
    if info.st_size != expected["size"]:
        return f"shards/{path.name} has {info.st_size} bytes instead of {expected['size']}"
    algorithm, digest = checksum_of(expected)
    key = (str(path.resolve()), info.st_ino, info.st_size, info.st_mtime_ns, digest)
    if verify is False or (verify is None and key in _VERIFIED):
        return None
    try:
        actual = file_checksum(path, algorithm=algorithm)
    except OSError as error:
        return f"shards/{path.name} cannot be read ({error.strerror or error})"
    if actual != digest:
        return f"shards/{path.name} does not match its checksum (its bytes changed after ingest)"
    _VERIFIED.add(key)
    return None


def shard_damage(folder: Path, shard: dict, verify: bool | None = None) -> str | None:
    """Why the files of manifest entry `shard` in `folder` (the shards/ folder) are not as committed,
    or None. The JSON index is always hashed (it is read whole anyway)."""
    for kind in ("json", "bin"):
        expected = shard[kind]
        if expected is not None:
            reason = file_damage(folder / f"{shard['name']}.{kind}", expected, True if kind == "json" else verify)
            if reason:
                return reason
    return None


def repair_hint(path: Path, source: str | None) -> str:
    """The command that rebuilds what is damaged in dataset folder `path`."""
    return f"run `tunesmith ingest {source or 'SRC_DIR'} --out {path} --repair` (or ingest again into a new folder)"
