"""DataConfig -> representation + train/valid datasets + provenance: the one way data enters training."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from symusic import Score
from torch.utils.data import Dataset

from tunesmith.core.errors import SkipFile, UserError
from tunesmith.data.augment import to_common_key, transpositions
from tunesmith.data.bar_pairs import BarPairs
from tunesmith.data.config import DataConfig
from tunesmith.data.datasets import FrameWindows, TokenWindows
from tunesmith.data.piece_history import HistoryPairs, PieceHistory, check_history_data
from tunesmith.data.sources import describe_source, file_split, load_scores
from tunesmith.data.splits import SPLIT_RULE, ids_fingerprint, split_ids
from tunesmith.data.streaming import prepare_streaming  # streaming
from tunesmith.representations import get_representation
from tunesmith.representations.base import Representation

log = logging.getLogger(__name__)

# Where time lies in a representation's arrays when not on axis 0 (multitrack: (5 groups, steps, 128),
# see representations/multitrack.py). A representation class may declare it as `time_axis` instead.
TIME_AXIS = {"multitrack": 1}
# The provenance entries that identify the training data: a resume compares them (`data_changes`).
FINGERPRINT_KEYS = ("source", "representation", "split_rule", "valid_fraction", "test_fraction", "transpose",
                    "normalize_key", "pieces", "train_ids_sha256", "valid_ids_sha256", "train_data_blake2b",
                    "valid_data_blake2b")


def time_axis(representation: Representation) -> int:
    """Axis of time in the arrays `representation.encode` returns."""
    return getattr(representation, "time_axis", TIME_AXIS.get(representation.name, 0))


@dataclass
class PreparedData:
    representation: Representation
    train: Dataset
    valid: Dataset
    provenance: dict[str, Any]
    scores: dict[str, list[Score]] = field(default_factory=dict)  # split -> original (unaugmented) scores


def prepare_data(cfg: DataConfig, data_kind: str, representation: Representation | None = None,
                 history: PieceHistory | None = None) -> PreparedData:
    """Load `cfg.source`, split by piece, augment and encode the training split, cut windows.

    `representation` is given when resuming (its learned vocabulary must not change); otherwise it is
    built from the config and fitted on the (augmented) training scores. `history` (frames only): the model
    reads the piece so far (`MusicModel.piece_history`), so both splits are window pairs on each piece's
    grid with its summary (`data/piece_history.py`).
    """
    if history is not None:
        if data_kind != "frames":
            raise ValueError(f"the piece so far is given with frames data, not {data_kind!r}")
        check_history_data(cfg, history)
    if data_kind == "audio":  # audio-vaegan: recordings, not scores (data/audio.py)
        from tunesmith.data.audio import prepare_audio_data  # audio-vaegan
        return prepare_audio_data(cfg, representation)  # audio-vaegan
    if cfg.streaming:  # streaming
        return prepare_streaming(cfg, data_kind, representation)  # streaming
    pieces = load_scores(cfg.source, cfg.limit)
    if len(pieces) < 2:
        raise UserError(f"{cfg.source} holds {len(pieces)} usable piece(s); training needs at least 2")
    by_id = {pid: to_common_key(score) for pid, score in pieces} if cfg.normalize_key else dict(pieces)
    own_splits = describe_source(cfg.source) == "jsb-file"  # a benchmark file's splits are kept as they are
    groups = ({s: [p for p in by_id if file_split(p) == s] for s in ("train", "valid", "test")} if own_splits
              else split_ids(list(by_id), cfg.valid_fraction, cfg.test_fraction))
    train_scores = [aug for pid in groups["train"] for aug in transpositions(by_id[pid], cfg.transpose)]
    if representation is None:
        representation = get_representation(cfg.representation, **cfg.representation_config)
        representation.fit(train_scores)
    encode = _encoder(data_kind, representation)
    (train, train_skips), (valid, valid_skips) = (_encode_all(encode, train_scores),
                                                  _encode_all(encode, [by_id[p] for p in groups["valid"]]))
    encoded, skipped = {"train": train, "valid": valid}, train_skips + valid_skips
    if not train or not valid:
        why = f" ({skip_summary(skipped)})" if skipped else ""
        raise UserError(f"{cfg.source}: no piece could be encoded as {cfg.representation!r} for "
                        f"{'train' if not train else 'valid'}{why}")
    if skipped:
        log.warning("%d piece(s) could not be encoded as %s and were left out (%s)", sum(skipped.values()),
                    representation.name, skip_summary(skipped))
    stride = cfg.stride or max(1, cfg.window // 2)
    datasets = {split: _windows(data_kind, arrays, cfg.window, stride, representation,
                                cfg.end_windows if split == "train" else 0.0,
                                (cfg.end_weight, cfg.end_bars) if split == "train" else (1.0, 1), history)
                for split, arrays in encoded.items()}
    provenance = {
        "source": cfg.source, "representation": cfg.representation,
        "split_rule": "the file's own train/valid/test splits" if own_splits else SPLIT_RULE,
        "valid_fraction": cfg.valid_fraction, "test_fraction": cfg.test_fraction, "transpose": cfg.transpose,
        "normalize_key": cfg.normalize_key,
        "pieces": {k: len(v) for k, v in groups.items()}, "train_ids_sha256": ids_fingerprint(groups["train"]),
        "valid_ids_sha256": ids_fingerprint(groups["valid"]),
        "train_data_blake2b": arrays_fingerprint(encoded["train"]),
        "valid_data_blake2b": arrays_fingerprint(encoded["valid"]),
    }
    if representation.is_tokens:
        quarters = sum(s.end() / s.ticks_per_quarter for s in train_scores)
        provenance["tokens_per_quarter"] = sum(map(len, encoded["train"])) / max(quarters, 1.0)
    scores = {k: [by_id[p] for p in v] for k, v in groups.items()}
    return PreparedData(representation, datasets["train"], datasets["valid"], provenance, scores)


def arrays_fingerprint(items: list) -> str:
    """BLAKE2b over encoded pieces (arrays, or tuples of arrays), dtype and shape included:
    names the exact data a model saw, so a changed file under an unchanged name is noticed on resume."""
    digest = hashlib.blake2b(digest_size=8)
    for item in items:
        for array in item if isinstance(item, tuple) else (item,):
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype.str}{array.shape};".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


def data_changes(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between a checkpoint's data provenance and the data prepared now, as
    "KEY was A, now B" phrases (keys present in both; an older checkpoint lacks some). The source's
    name counts only without content hashes: a folder moved with its content unchanged is the same data."""
    keys = [k for k in FINGERPRINT_KEYS if not (k == "source" and "train_data_blake2b" in saved)]
    return [f"{key} was {saved[key]!r}, now {current[key]!r}" for key in keys
            if key in saved and key in current and saved[key] != current[key]]


def _encoder(data_kind: str, representation: Representation) -> Callable[[Score], Any]:
    """Score -> training item: the representation's array; for bar models (bars, chords), the bars
    (n_bars, T, 128) uint8 and the chords (n_bars, 13) float32 of the bars representation."""
    if data_kind != "bars":
        return representation.encode
    if not hasattr(representation, "chords"):
        raise UserError(f"this model needs the bars representation, not {representation.name!r}")
    return lambda score: (representation.encode(score), representation.chords(score))


def _encode_all(encode: Callable[[Score], Any], scores: list[Score]) -> tuple[list[Any], Counter]:
    """The non-empty encodings of `scores`, and the reasons (with counts) the others were skipped."""
    items, skipped = [], Counter()
    for score in scores:
        try:
            item = encode(score)
        except SkipFile as reason:
            skipped[str(reason).split(" at tick")[0]] += 1
            continue
        if len(item[0] if isinstance(item, tuple) else item):
            items.append(item)
    return items, skipped


def skip_summary(skipped: Counter) -> str:
    """The most common reasons pieces were skipped, with counts: '3 x not in 4/4, 1 x no notes'."""
    common = skipped.most_common()
    return ", ".join(f"{n} x {why}" for why, n in common[:3]) + (", ..." if len(common) > 3 else "")


def _windows(kind: str, arrays: list[np.ndarray], window: int, stride: int, rep: Representation,
             end_share: float = 0.0, end_weight: tuple[float, int] = (1.0, 1),
             history: PieceHistory | None = None) -> Dataset:
    if end_share > 0 and kind != "tokens":
        raise UserError(f"data.end_windows applies to token models; this model trains on {kind}")
    weighted = end_weight[0] != 1.0
    if weighted and getattr(rep, "countdown", None) is None:
        raise UserError("data.end_weight needs a token representation with bar countdown tokens "
                        "(events with countdown: K)")
    if kind == "tokens":
        if not rep.is_tokens:
            raise UserError(f"this model needs a token representation, not {rep.name!r}")
        return TokenWindows(arrays, window, stride, rep.bos_id, rep.eos_id, rep.pad_id, end_share,
                            end_weight=end_weight[0], end_bars=end_weight[1],
                            is_bar=rep.countdown.is_bar if weighted else None)
    if kind == "frames" and history is not None:
        return HistoryPairs(arrays, history, time_axis(rep))
    if kind == "frames":
        return FrameWindows(arrays, window, stride, time_axis(rep))
    if kind == "bars":
        return BarPairs(arrays)
    raise ValueError(f"unknown data kind {kind!r}")
