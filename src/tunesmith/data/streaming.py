"""Streaming windows over an ingest dataset (`data.streaming: true`): nothing decoded is kept.

The in-memory path (`build.prepare_data`) decodes every piece, keeps every transposed copy and every
encoding resident: memory grows with the collection. Here a training item is an address, (piece,
transposition, window), and `__getitem__` reads that one piece from the memory-mapped shards
(`io.cache`), transposes it, encodes it and cuts the window. What stays resident is the piece's row
in the dataset, its number of transpositions, the lowest and its encoded length (21 bytes) and each
window's start (4 bytes), against the kilobytes of its encodings, plus the cache's index (~90 bytes
per piece). The
shards' mapped pages are dropped every `RELEASE_EVERY` pieces read, so they do not pile up in the
resident set of the trainer or its DataLoader workers (`benchmarks/scale.py`: peak RSS x1.03 from 5,000
to 50,000 pieces).

Preparation makes two streaming passes over the training pieces: one fits the representation (its
vocabulary, on every transposed copy, as the in-memory path does; a representation that learns nothing
never consumes it) and one encodes each piece once to count its windows and fingerprint the data. The
order of items is the sampler's (a pure function of seed, epoch and rank), and an item is a pure
function of its index, so resume stays exact. Data kinds "tokens" and "frames" (whose windows in
which nothing sounds are left out, as in memory: the index pass keeps the starts of the others).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from symusic import Score
from torch.utils.data import Dataset

from tunesmith.core.errors import SkipFile, UserError
from tunesmith.core.score import pitch_range, transpose
from tunesmith.data.augment import to_common_key
from tunesmith.data.config import DataConfig
from tunesmith.data.datasets import frame_window, token_window, window_offsets
from tunesmith.data.sources import describe_source
from tunesmith.data.splits import SPLIT_RULE, ids_fingerprint, split_ids
from tunesmith.io.cache import DatasetCache, open_dataset
from tunesmith.representations import get_representation
from tunesmith.representations.base import Representation

log = logging.getLogger(__name__)
RELEASE_EVERY = 16  # pieces read between dropping the shards' resident pages (~0.3 MB each)


def shifts_of(score: Score, max_shift: int) -> list[int]:
    """The transpositions `augment.transpositions` makes of `score`, as semitone shifts (0 first)."""
    span = pitch_range(score)
    candidates = [0] + [s for s in range(-max_shift, max_shift + 1) if s != 0]
    return [0] if span is None else [s for s in candidates if span[0] + s >= 0 and span[1] + s <= 127]


def shift_at(lowest: int, k: int) -> int:
    """`shifts_of(score, m)[k]` from the lowest shift of that list alone: the valid shifts are one run
    of integers around 0, listed 0 first, then the others in rising order. The index pass keeps the
    lowest shift of each piece (1 byte), so an item needs no pass over the piece's notes to find it."""
    if k == 0:
        return 0
    shift = lowest + k - 1
    return shift + 1 if shift >= 0 else shift


class PieceReader:
    """Scores of an ingest dataset by row, key-normalised when asked, re-opened in each process (the
    memory maps are not shared across a fork's copy-on-write pages) and released every so often."""

    def __init__(self, folder: Path, normalize_key: bool) -> None:
        self.folder, self.normalize_key = Path(folder), normalize_key
        self._cache: DatasetCache | None = None
        self._reads = 0

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_cache": None}

    @property
    def cache(self) -> DatasetCache:
        if self._cache is None:
            self._cache = open_dataset(self.folder, verify=False)  # checked once when the run prepared
        return self._cache

    def _count_read(self) -> None:
        self._reads += 1
        if self._reads % RELEASE_EVERY == 0:
            self.cache.release_pages()

    def score(self, row: int) -> Score:
        self._count_read()
        score = self.cache.score(row)
        return to_common_key(score) if self.normalize_key else score

    def notes(self, row: int) -> tuple[dict[str, np.ndarray], int]:
        """(the note table of row `row`, views of the memory map; its ticks per quarter), no Score built.
        Only without key normalisation, which needs the Score to estimate the key."""
        self._count_read()
        return self.cache.notes(row), self.cache.tpq(row)


class StreamingWindows(Dataset):
    """Items as `datasets.TokenWindows` ({"tokens"}) or `datasets.FrameWindows` ({"frames", "mask"}) cut
    them, from pieces read and encoded when an item is asked for. Piece p is dataset row `rows[p]` with
    `shift_counts[p]` transpositions (the lowest `lowest_shifts[p]`, see `shift_at`); its windows start
    at `starts[bounds[p] : bounds[p + 1]]` (found on the untransposed encoding); items run piece by
    piece, transposition by transposition, window by window, the in-memory order."""

    def __init__(self, reader: PieceReader, representation: Representation, kind: str, index: dict[str, Any],
                 window: int, max_shift: int, time_axis: int = 0):
        self.reader, self.representation, self.kind = reader, representation, kind
        self.rows, self.shift_counts, self.starts = index["rows"], index["shifts"], index["starts"]
        self.bounds, self.lowest_shifts, self.lengths = index["bounds"], index["lowest_shifts"], index["lengths"]
        self.window = window + 1 if kind == "tokens" else window
        self.max_shift, self.time_axis = max_shift, time_axis
        per_piece = np.diff(self.bounds) * self.shift_counts
        # Token representations that encode from note arrays (grid) skip building a Score per item.
        self.from_notes = kind == "tokens" and representation.encodes_note_arrays and not reader.normalize_key
        self.item_bounds = np.concatenate([[0], np.cumsum(per_piece)])

    def __len__(self) -> int:
        return int(self.item_bounds[-1])

    def address(self, item: int) -> tuple[int, int, int]:
        """(piece, transposition index, window index) of item `item`."""
        piece = int(np.searchsorted(self.item_bounds, item, side="right")) - 1
        windows = int(self.bounds[piece + 1] - self.bounds[piece])
        shift, k = divmod(item - int(self.item_bounds[piece]), windows)
        return piece, shift, k

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        if not 0 <= item < len(self):
            raise IndexError(item)
        piece, shift_index, k = self.address(item)
        shift = shift_at(int(self.lowest_shifts[piece]), shift_index)
        if self.from_notes:  # straight from the cache's note arrays: the same tokens (test_streaming_fast.py)
            return self._window_from_notes(piece, k, shift)
        score = self.reader.score(int(self.rows[piece]))
        array = encode_piece(self.representation, self.kind, transpose(score, shift) if shift else score,
                             self.time_axis)
        # a transposed copy may encode a little shorter: its last window then ends where it ends
        start = min(int(self.starts[self.bounds[piece] + k]), max(0, len(array) - self.window))
        if self.kind == "tokens":
            return token_window(array, start, self.window, self.representation.pad_id)
        return frame_window(array, start, self.window)


    def _window_from_notes(self, piece: int, k: int, shift: int) -> dict[str, torch.Tensor]:
        """`token_window` of window `k` of [bos] + ids + [eos], encoding only the steps the window holds
        (`GridRepresentation.step_ids`), so an item of a long piece costs what a short one does."""
        rep = self.representation
        notes, tpq = self.reader.notes(int(self.rows[piece]))
        length = int(self.lengths[piece])  # tokens of the piece: bos, one per step, eos (any transposition)
        start = min(int(self.starts[self.bounds[piece] + k]), max(0, length - self.window))
        stop = min(start + self.window, length)
        first, last = max(start - 1, 0), min(stop - 1, length - 2)  # the steps the window shows
        # Only notes whose ticks can reach those steps (one step of margin around the rounding: a
        # superset; `step_ids` keeps the exact ones): a long piece costs what its window holds.
        ticks = tpq / rep.config.steps_per_quarter
        tick, end_tick = notes["start"], notes["start"].astype(np.int64) + notes["duration"]
        near = (tick <= (last + 1) * ticks) & (end_tick >= (first - 2) * ticks)
        steps = rep.note_steps(*(notes[key][near] for key in ("pitch", "start", "duration", "is_drum")), tpq, shift)
        ids = rep.step_ids(*steps[:3], length - 2, first, last)
        chunk = np.concatenate([[rep.bos_id]] * (start == 0) + [ids] + [[rep.eos_id]] * (stop == length))
        return token_window(chunk.astype(np.int64), 0, self.window, rep.pad_id)


def encode_piece(representation: Representation, kind: str, score: Score, time_axis: int = 0) -> np.ndarray:
    """Tokens: [bos] + the piece's tokens + [eos], int64; frames: the encoding with time first."""
    encoded = np.asarray(representation.encode(score))
    if kind == "frames":
        return np.moveaxis(encoded, time_axis, 0)
    return _with_ends(representation, encoded)


def _with_ends(representation: Representation, encoded: np.ndarray) -> np.ndarray:
    """[bos] + tokens + [eos], int64."""
    out = np.empty(len(encoded) + 2, np.int64)
    out[0], out[1:-1], out[-1] = representation.bos_id, encoded, representation.eos_id
    return out


def prepare_streaming(cfg: DataConfig, data_kind: str, representation: Representation | None = None):
    """`build.prepare_data` for `data.streaming: true`: the same splits (by piece id), representation
    and provenance keys, with datasets that read pieces when asked."""
    from tunesmith.data.build import PreparedData, skip_summary, time_axis

    if describe_source(cfg.source) != "dataset":
        raise UserError(f"data.streaming reads an ingest dataset folder (tunesmith ingest), but {cfg.source} "
                        "is not one; ingest it first or set data.streaming: false")
    if data_kind not in ("tokens", "frames"):
        raise UserError(f"data.streaming serves token and frame models, not {data_kind!r} models; set "
                        "data.streaming: false")
    reader = PieceReader(Path(cfg.source), cfg.normalize_key)
    cache = reader._cache = open_dataset(reader.folder)  # checks every shard's checksum once; one index
    ids = cache.piece_ids[: cfg.limit]
    if len(ids) < 2:
        raise UserError(f"{cfg.source} holds {len(ids)} usable piece(s); training needs at least 2")
    groups = split_ids(ids, cfg.valid_fraction, cfg.test_fraction)
    row_of = {pid: row for row, pid in enumerate(ids)}
    if representation is None:
        representation = get_representation(cfg.representation, **cfg.representation_config)
        representation.fit(_transposed(reader, [row_of[p] for p in groups["train"]], cfg.transpose))
    if data_kind == "tokens" and not representation.is_tokens:
        raise UserError(f"this model needs a token representation, not {representation.name!r}")
    axis = time_axis(representation)
    stride = cfg.stride or max(1, cfg.window // 2)
    datasets, provenance, skipped = {}, {}, Counter()
    for split, max_shift in (("train", cfg.transpose), ("valid", 0)):
        rows = [row_of[p] for p in groups[split]]
        index = _index(reader, representation, data_kind, rows, (cfg.window, stride, axis), max_shift)
        skipped += index.pop("skipped")
        if not len(index["rows"]):
            raise UserError(f"{cfg.source}: no piece could be encoded as {cfg.representation!r} for {split}")
        datasets[split] = StreamingWindows(reader, representation, data_kind, index, cfg.window, max_shift, axis)
        provenance[f"{split}_data_blake2b"] = index["digest"]
        if representation.is_tokens:
            provenance.setdefault("tokens_per_quarter", index["tokens_per_quarter"])
    if skipped:
        log.warning("%d piece(s) could not be encoded as %s and were left out (%s)", sum(skipped.values()),
                    representation.name, skip_summary(skipped))
    provenance.update({
        "source": cfg.source, "representation": cfg.representation, "split_rule": SPLIT_RULE,
        "valid_fraction": cfg.valid_fraction, "test_fraction": cfg.test_fraction, "transpose": cfg.transpose,
        "normalize_key": cfg.normalize_key, "pieces": {k: len(v) for k, v in groups.items()},
        "train_ids_sha256": ids_fingerprint(groups["train"]), "valid_ids_sha256": ids_fingerprint(groups["valid"]),
        "streaming": True,
    })
    cache.release_maps()
    release_free_heap()
    return PreparedData(representation, datasets["train"], datasets["valid"], provenance)


def release_free_heap() -> None:
    """Hand the C heap's free pages back to the OS (glibc's `malloc_trim`; a no-op elsewhere).

    Preparation builds and drops per-piece lists, dicts and arrays; glibc keeps the freed memory
    mapped (its large-allocation threshold rises after each big free), so without this the trainer's
    resident memory stays ~0.3 KB per piece higher than what it holds.
    """
    import contextlib
    import ctypes

    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL(None).malloc_trim(0)  # the symbols this process has loaded, libc's among them


def _transposed(reader: PieceReader, rows: list[int], max_shift: int) -> Iterator[Score]:
    """Every transposed copy of the pieces at `rows`, one at a time (what `fit` sees in memory)."""
    for row in rows:
        score = reader.score(row)
        for shift in shifts_of(score, max_shift):
            yield transpose(score, shift) if shift else score


def _index(reader: PieceReader, representation: Representation, kind: str, rows: list[int],
           cut: tuple[int, int, int], max_shift: int) -> dict[str, Any]:
    """One pass: each piece encoded once, for its window starts (frames: those in which something
    sounds), its transpositions and a fingerprint (BLAKE2b over the untransposed encodings and the
    shift counts). `cut`: (window, stride, time axis)."""
    window, stride, axis = cut
    kept, shifts, lowest, starts, bounds, lengths, skipped = [], [], [], [], [0], [], Counter()
    digest, tokens, quarters = hashlib.blake2b(digest_size=8), 0, 0.0
    for row in rows:
        score = reader.score(row)
        try:
            array = encode_piece(representation, kind, score, axis)
        except SkipFile as reason:
            skipped[str(reason).split(" at tick")[0]] += 1
            continue
        if kind == "tokens":
            offsets = window_offsets(len(array), window + 1, stride) if len(array) > 2 else []
        else:
            offsets = [o for o in window_offsets(len(array), window, stride) if array[o : o + window].any()]
        if not len(array) or not offsets:  # nothing sounds, or nothing but bos and eos
            continue
        piece_shifts = shifts_of(score, max_shift)
        count = len(piece_shifts)
        kept.append(row)
        shifts.append(count)
        lowest.append(min(piece_shifts))
        starts.extend(offsets)
        bounds.append(len(starts))
        lengths.append(len(array))
        digest.update(f"{array.dtype.str}{array.shape}x{count};".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
        tokens, quarters = tokens + len(array) - 2, quarters + score.end() / score.ticks_per_quarter
    return {"rows": np.array(kept, np.int64), "shifts": np.array(shifts, np.int64),
            "lowest_shifts": np.array(lowest, np.int8),
            "starts": np.array(starts, np.int32), "bounds": np.array(bounds, np.int64), "skipped": skipped,
            "lengths": np.array(lengths, np.int32),
            "digest": digest.hexdigest(), "tokens_per_quarter": tokens / max(quarters, 1.0)}
