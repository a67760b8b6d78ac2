"""`torchrun --nproc_per_node 2 -m tunesmith train` on the CPU (gloo): the loss curve of one process with
the doubled batch, and an exact resume after one rank is killed."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tunesmith.models.checkpoint import load_checkpoint
from tunesmith.resources import shipped_recipe
from tunesmith.training.config import load_config
from tunesmith.training.loop import train

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "tunesmith", "train"]
LSTM = ["trainer.max_epochs=2", "trainer.log_every=1", "trainer.checkpoint_every=3"]


def _sets(overrides: list[str]) -> list[str]:
    return [arg for item in overrides for arg in ("--set", item)]


def _losses(run: Path, split: str) -> dict[int, float]:
    rows = [line.split(",") for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    return {int(r[0]): float(r[4]) for r in rows if r[2] == split and r[3] == "loss"}


def _torchrun(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([*TORCHRUN, *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)


def _children(pid: int) -> list[int]:
    """Process ids whose parent is `pid` (from /proc: no psutil dependency)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return sorted(found)


def _alive(pid: int) -> bool:
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


def _kill_one_rank(args: list[str], checkpoint: Path) -> None:
    """Start torchrun, SIGKILL one worker as soon as the first checkpoint lands, wait until all have exited."""
    agent = subprocess.Popen([*TORCHRUN, *args], cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not checkpoint.exists() and time.time() < deadline and agent.poll() is None:
        time.sleep(0.002)
    workers = _children(agent.pid)
    assert len(workers) == 2, workers
    os.kill(workers[-1], signal.SIGKILL)
    assert agent.wait(timeout=120) != 0  # torchrun stops the other rank and fails
    deadline = time.time() + 30
    while any(_alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(_alive(w) for w in workers)  # no orphans


@pytest.mark.slow
def test_two_processes_match_one_with_the_doubled_batch_and_resume_exactly_after_a_rank_dies(tmp_path,
                                                                                          one_thread):
    """Dropout stays on (each rank draws its own masks), so the curves agree within 2 %, not exactly;
    the ranks' weights are compared at every checkpoint (`check_in_step`), exactly."""
    lstm = shipped_recipe("debug/lstm")
    full, killed = tmp_path / "ddp", tmp_path / "killed"
    ddp = _torchrun([str(lstm), "--out", str(full), *_sets([*LSTM, "optim.batch_size=4"])])
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = train(load_config(lstm, [*LSTM, "optim.batch_size=8"]), tmp_path / "single")
    for split in ("train", "valid"):
        two, one = _losses(full, split), _losses(single, split)
        assert two.keys() == one.keys() and len(one) >= 2
        assert all(abs(two[s] - one[s]) <= 0.02 * one[s] for s in one), (split, two, one)

    _kill_one_rank([str(lstm), "--out", str(killed), *_sets([*LSTM, "optim.batch_size=4"])],
                   killed / "checkpoints" / "last.ckpt")
    final_step = load_checkpoint(full / "checkpoints" / "last.ckpt")["step"]
    interrupted = load_checkpoint(killed / "checkpoints" / "last.ckpt")
    assert interrupted["step"] < final_step, "the kill came too late to test a resume"
    assert len(interrupted["rng_ranks"]) == 2  # every rank's random state, for its own dropout masks
    resumed = _torchrun(["--resume", str(killed)])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = load_checkpoint(full / "checkpoints" / "last.ckpt"), load_checkpoint(killed / "checkpoints" / "last.ckpt")
    assert a["step"] == b["step"] == final_step
    assert all(torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"])
    assert (full / "metrics.csv").read_text() == (killed / "metrics.csv").read_text()


def _diverged_rank(rank: int, store: str, out: str) -> None:
    """A rank of a 2-process gloo group whose weights differ from the other's (as they would if an
    objective ran its forward passes around DDP): `check_in_step` must refuse to go on."""
    import torch.distributed as dist

    from tunesmith.training.distributed import Cluster, check_in_step

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        model = torch.nn.Linear(3, 2)
        torch.nn.init.constant_(model.weight, 1.0 + rank)
        try:
            check_in_step(model, 1, Cluster(rank, 2, rank, 2))
            Path(f"{out}.{rank}").write_text("passed")
        except RuntimeError as error:
            Path(f"{out}.{rank}").write_text(str(error))
    finally:
        dist.destroy_process_group()


def test_ranks_with_different_weights_are_stopped(tmp_path):
    torch.multiprocessing.spawn(_diverged_rank, args=(str(tmp_path / "store"), str(tmp_path / "out")), nprocs=2)
    for rank in range(2):
        assert "weights differ at step 1" in (tmp_path / f"out.{rank}").read_text()
