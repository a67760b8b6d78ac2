"""Batches for training: a stateful batch sampler and a `torch.utils.data.DataLoader` around it.

The order of an epoch is a pure function of (seed, epoch, rank, world size): one permutation of the
items per (seed, epoch), padded (by wrapping) to a multiple of the world size and dealt round-robin, so
rank r of W gets items r, r + W, r + 2W, ... of it; each rank cuts its share into batches. One process
with batch 2B and two with batch B therefore see the same examples at each optimizer step.

The sampler's state is (epoch, batch): where an epoch starts. The loop records the batches it has
*consumed* (`Position.batch`, saved in every checkpoint) and starts the next iterator there, so the
batches worker processes had prefetched when a run was killed are neither lost nor repeated on resume.
Items are pure functions of their index (all randomness of the data is drawn in `prepare_data` or from
the index), so which worker loads an item does not change it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate


def _rank_order(n_items: int, seed: int, epoch: int, rank: int, world: int) -> np.ndarray:
    """`epoch_order` as an int64 array: 8 bytes per item, where a list of Python ints costs ~40."""
    generator = torch.Generator().manual_seed((seed * 100_003 + epoch) % 2**64)  # any recipe seed fits
    order = torch.randperm(n_items, generator=generator).numpy()
    padded = math.ceil(n_items / world) * world
    if padded > n_items:  # every rank gets as many items (and batches) as the others
        order = np.concatenate([order, order[: padded - n_items]])
    return order[rank::world]


def epoch_order(n_items: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> list[int]:
    """This rank's items of epoch `epoch`, in order: ceil(n_items / world) indices."""
    return _rank_order(n_items, seed, epoch, rank, world).tolist()


def epoch_batches(n_items: int, batch_size: int, seed: int, epoch: int, rank: int = 0,
                  world: int = 1) -> list[list[int]]:
    """This rank's shuffled batches of item indices; the last batch may be short."""
    order = _rank_order(n_items, seed, epoch, rank, world)
    return [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]


class EpochSampler(Sampler[list[int]]):
    """Batch sampler over one epoch at a time; `start(epoch, batch)` sets where the next iterator begins."""

    def __init__(self, n_items: int, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> None:
        self.n_items, self.batch_size, self.seed, self.rank, self.world = n_items, batch_size, seed, rank, world
        self.epoch, self.batch = 0, 0

    def start(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batch": self.batch}

    def batches_per_epoch(self) -> int:
        return math.ceil(math.ceil(self.n_items / self.world) / self.batch_size)

    def __len__(self) -> int:
        return self.batches_per_epoch() - self.batch

    def __iter__(self) -> Iterator[list[int]]:
        # one batch at a time from the order array: what stays resident does not grow with the collection
        order = _rank_order(self.n_items, self.seed, self.epoch, self.rank, self.world)
        for i in range(self.batch * self.batch_size, len(order), self.batch_size):
            yield order[i : i + self.batch_size].tolist()


def make_loader(dataset: Dataset, sampler: EpochSampler, workers: int, pin_memory: bool) -> DataLoader | Batches:
    """A DataLoader over `sampler`'s batches (dicts of tensors). Its own generator keeps it from drawing on
    the global torch RNG (which dropout uses), so creating an iterator mid-epoch on resume changes no
    random stream. With worker processes and no pinning, batches travel as numpy arrays (`Batches`)."""
    arrays = workers > 0 and not pin_memory  # pinned batches keep torch's path: its pinning thread takes tensors
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=workers, pin_memory=pin_memory,
                        collate_fn=numpy_collate if arrays else default_collate, persistent_workers=workers > 0,
                        generator=torch.Generator().manual_seed(sampler.seed % 2**63),
                        prefetch_factor=4 if workers > 0 else None)
    return Batches(loader) if arrays else loader


def numpy_collate(items: list) -> Any:
    """Items that are dicts of tensors or arrays -> one dict of stacked numpy arrays (what `default_collate`
    stacks, as arrays); anything else as `default_collate` makes it.

    Why: a worker sends each batch tensor through a shared-memory file and a passed descriptor, which cost
    the training process ~0.67 ms of CPU per batch against ~0.14 ms for the same arrays pickled whole
    (batch 32 x 65 tokens, measured on this 2-core machine): time taken from the training step."""
    first = items[0]
    if not isinstance(first, dict) or not all(isinstance(v, torch.Tensor | np.ndarray) for v in first.values()):
        return default_collate(items)
    return {key: np.stack([np.asarray(item[key]) for item in items]) for key in first}


class Batches:
    """A DataLoader whose workers collate with `numpy_collate`, yielding dicts of tensors again (the arrays'
    memory, no copy)."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader, self.iterator = loader, None

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        self.iterator = iter(self.loader)  # the DataLoader's iterator (its worker processes), for benchmarks
        for batch in self.iterator:
            yield {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in batch.items()} \
                if isinstance(batch, dict) else batch


def valid_batches(n_items: int, batch_size: int, rank: int = 0, world: int = 1,
                  cap: int | None = None) -> list[list[int]]:
    """This rank's share of the validation batches (in order, unshuffled, at most `cap` in all ranks)."""
    starts = range(0, n_items, batch_size)[:cap][rank::world]  # only the batches evaluated are built
    return [list(range(s, min(s + batch_size, n_items))) for s in starts]
