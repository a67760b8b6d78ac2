"""Batches from DataLoader workers travel as numpy arrays (`loader.numpy_collate`, `loader.Batches`): the
training process must get exactly the tensors `default_collate` makes, for token, frame and audio items."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import default_collate

from tunesmith.training.loader import Batches, EpochSampler, make_loader, numpy_collate


class Items(torch.utils.data.Dataset):
    """Token items (tensors), frame items (float and bool tensors) or audio items (float32 arrays)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __len__(self) -> int:
        return 13

    def __getitem__(self, i: int):
        rng = np.random.default_rng(i)
        if self.kind == "tokens":
            return {"tokens": torch.from_numpy(rng.integers(0, 130, 9))}
        if self.kind == "frames":
            return {"frames": torch.from_numpy(rng.random((6, 4), np.float32)), "mask": torch.arange(6) < i % 6}
        return {"context": rng.random((2, 5), np.float32), "target": rng.random((2, 5), np.float32)}


def as_tensors(batch: dict) -> dict:
    return {k: torch.from_numpy(v) for k, v in batch.items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


def test_numpy_collate_gives_the_default_collate_tensors():
    for kind in ("tokens", "frames", "audio"):
        items = [Items(kind)[i] for i in range(5)]
        assert same(as_tensors(numpy_collate(items)), default_collate(items))
    left = numpy_collate([(1, 2), (3, 4)])  # not a dict: left to torch
    assert all(torch.equal(a, b) for a, b in zip(left, default_collate([(1, 2), (3, 4)]), strict=True))


def test_worker_batches_equal_in_process_batches():
    for kind in ("tokens", "frames", "audio"):
        plain = list(make_loader(Items(kind), EpochSampler(13, 4, seed=3), 0, False))
        loader = make_loader(Items(kind), EpochSampler(13, 4, seed=3), 2, False)
        assert isinstance(loader, Batches) and len(loader) == len(plain) == 4
        got = list(loader)
        assert len(got) == 4 and all(same(a, b) for a, b in zip(got, plain, strict=True))
        assert all(v.flags.writeable for batch in got for v in (t.numpy() for t in batch.values()))
