"""Data-parallel training under `torchrun`: the process group, DistributedDataParallel, collectives.

`torchrun --nproc_per_node N -m tunesmith train RECIPE --out RUN` starts N copies of the command with
RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR in the environment; `start` joins them into one process
group (gloo on CPU, NCCL on CUDA, one GPU per local rank). Every rank prepares the same data, builds the
same model (DDP also broadcasts rank 0's weights), reads the same checkpoint on resume, and trains on its
shard of each epoch (`loader.epoch_order`); DDP averages gradients in the backward pass. Rank 0 alone
writes logs and checkpoints (atomically, with every rank's RNG state); metrics are averaged over ranks.

FSDP would go in `wrap` (wrapping with `fully_shard` instead of DDP) and in the checkpoint code, which
would then save sharded state dicts (torch.distributed.checkpoint) instead of rank 0's full one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from tunesmith.core.errors import UserError


@dataclasses.dataclass(frozen=True)
class Cluster:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


SINGLE = Cluster()
COLLECTIVE_DTYPES = {torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.uint8, torch.int8,
                     torch.int32, torch.int64}  # what gloo and NCCL both broadcast


def from_env() -> Cluster:
    """The cluster torchrun describes in the environment (SINGLE outside torchrun)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    except ValueError:
        raise UserError("WORLD_SIZE, RANK, LOCAL_RANK and LOCAL_WORLD_SIZE must be whole numbers "
                        "(torchrun sets them)") from None
    if world < 1 or not 0 <= rank < world:
        raise UserError(f"RANK {rank} and WORLD_SIZE {world} do not describe a process of a training run")
    return Cluster(rank, world, local, max(1, local_world))


def start(device_type: str) -> Cluster:
    """Join the process group torchrun set up (nothing to do for one process)."""
    cluster = from_env()
    if cluster.active and not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(cluster.local_rank)
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    return cluster


def stop(cluster: Cluster) -> None:
    if cluster.active and dist.is_initialized():
        dist.destroy_process_group()


def local_device(device: torch.device, cluster: Cluster) -> torch.device:
    """The device this rank trains on: its own GPU (by local rank) under CUDA."""
    if device.type == "cuda" and cluster.active:
        return torch.device("cuda", cluster.local_rank)
    return device


def gather(obj: Any, cluster: Cluster) -> list[Any]:
    """`obj` of every rank, in rank order (picklable objects; tensors travel on the CPU)."""
    if not cluster.active:
        return [obj]
    out: list[Any] = [None] * cluster.world
    dist.all_gather_object(out, obj)
    return out


def mean_metrics(metrics: dict[str, float], cluster: Cluster) -> dict[str, float]:
    """Each metric averaged over ranks (every rank logs the same names, in the same order)."""
    if not cluster.active:
        return metrics
    names = list(metrics)
    values = torch.tensor([metrics[n] for n in names], dtype=torch.float64)
    dist.all_reduce(values if dist.get_backend() == "gloo" else values.cuda())
    return {n: float(v) / cluster.world for n, v in zip(names, values.cpu().tolist(), strict=True)}


def any_rank(flag: bool, cluster: Cluster) -> bool:
    """True on every rank when `flag` is True on any (time limits are read per rank)."""
    if not cluster.active:
        return flag
    value = torch.tensor([float(flag)])
    value = value if dist.get_backend() == "gloo" else value.cuda()
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def check_same(name: str, value: Any, cluster: Cluster) -> None:
    """UserError unless every rank holds the same `value` (e.g. a fingerprint of its training data)."""
    values = gather(value, cluster)
    if any(v != values[0] for v in values):
        raise UserError(f"the training processes disagree on {name} (rank 0: {values[0]!r}); every rank must "
                        "see the same data and recipe")


def check_in_step(model: nn.Module, step: int, cluster: Cluster) -> None:
    """RuntimeError unless every rank holds bit-identical weights (DDP's all-reduce makes them so): a
    checkpoint of rank 0's weights would otherwise silently stand for diverged models. Cheap: one
    float64 checksum per rank, compared at each checkpoint."""
    if not cluster.active:
        return
    with torch.no_grad():
        checksum = sum(float(p.detach().double().sum()) + float(p.detach().double().abs().sum())
                       for p in model.parameters())
    sums = gather(checksum, cluster)
    if any(s != sums[0] for s in sums):
        raise RuntimeError(f"the training processes' weights differ at step {step} (checksums {sums}): their "
                           "gradients were not averaged; an objective must run forward passes through its engine")


def rank_seed(seed: int, rank: int) -> int:
    """The torch seed of rank `rank` after the model is built: rank 0 keeps the run's stream (so one
    process trains exactly as before); other ranks draw their own dropout masks."""
    return seed if rank == 0 else (seed * 1_000_003 + rank) % 2**63


class Dispatch(nn.Module):
    """`net(method, batch)` runs `model.<method>(batch)` (loss, discriminator_loss, ...): one forward that
    DDP and torch.compile can wrap for every family and objective."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, method: str, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return getattr(self.model, method)(batch)


def rank_local_buffers(module: nn.Module) -> list[str]:
    """Buffers DDP must not broadcast from rank 0: dtypes the collectives cannot carry (e.g. MidiNet's
    int16 bank of the training bars each rank has seen, which stays each rank's own)."""
    return [name for name, buffer in module.named_buffers() if buffer.dtype not in COLLECTIVE_DTYPES]


def wrap(model: nn.Module, cluster: Cluster, device: torch.device, compile_model: bool,
         partial_updates: bool = False) -> tuple[Callable[..., Any], Callable[[], Any]]:
    """(net, no_sync): the callable objectives run forward passes through, and the context that skips
    DDP's gradient all-reduce for all but the last micro-batch of an accumulated step.
    `partial_updates`: some backward passes leave parameters without gradients (a GAN's discriminator
    step leaves the generator's), which DDP must then look for after each forward."""
    net: nn.Module = Dispatch(model)
    no_sync: Callable[[], Any] = contextlib.nullcontext
    if cluster.active:
        ids = [device.index] if device.type == "cuda" else None
        ddp = nn.parallel.DistributedDataParallel
        ddp._set_params_and_buffers_to_ignore_for_model(net, rank_local_buffers(net))
        net = ddp(net, device_ids=ids, find_unused_parameters=partial_updates)
        no_sync = net.no_sync
    if compile_model:
        net = torch.compile(net)
    return net, no_sync
