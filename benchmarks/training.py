"""Training throughput of the 3 x 512 LSTM next-token model vs this CPU's measured fp32 matmul peak.

Both are measured in this one run, on the same thread count (default 1: recurrent training was fastest
with one thread per process on our 2-core machines). FLOPs per token are counted analytically:
forward = 2 x (4h x (in + h)) per layer + 2 x h x vocab for the head; backward = 2 x forward.
Target: achieved GFLOP/s at least half of the matmul peak.

`--loader`: the share of training-step time spent waiting for the DataLoader, with 0 and 2 worker
processes side by side, for a small LSTM (fast steps, so waiting shows) on the bundled Bach chorales
in memory, and, with `--dataset DIR` (an ingest dataset folder), streamed (`data.streaming`), where
each item is read and encoded when asked for. Target: with 2 workers the step never waits (< 5 %).
`--precision bf16` runs the LSTM throughput under bf16 autocast (CUDA when present, else the CPU).
Usage: python benchmarks/training.py [--threads N] [--batch B] [--window T] [--steps S] [--precision P]
       python benchmarks/training.py --loader [--dataset DIR] [--steps S]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from pathlib import Path

import torch

from tunesmith.models.rnn import RNNConfig, RNNLanguageModel

RESULTS = Path(__file__).parent / "results" / "training_loader.md"


def matmul_peak_gflops(n: int = 1024, repeats: int = 20) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def flops_per_token(cfg: RNNConfig) -> float:
    forward = 0.0
    width = cfg.embed_dim
    for _ in range(cfg.num_layers):
        forward += 2 * 4 * cfg.hidden_size * (width + cfg.hidden_size)
        width = cfg.hidden_size
    forward += 2 * cfg.hidden_size * cfg.vocab_size
    return 3 * forward


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--loader", action="store_true")
    parser.add_argument("--dataset", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.loader:
        loader_report(args.dataset, max(args.steps, 60))
        return
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = RNNConfig(vocab_size=400, embed_dim=128, hidden_size=512, num_layers=3, dropout=0.2)
    model = RNNLanguageModel(cfg).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = {"tokens": torch.randint(1, cfg.vocab_size, (args.batch, args.window + 1), device=device)}
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if args.precision == "bf16"
                else contextlib.nullcontext())

    def step() -> None:
        optimizer.zero_grad()
        with autocast:
            loss = model.loss(batch)["loss"]
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = (time.perf_counter() - start) / args.steps
    tokens_per_s = args.batch * args.window / seconds
    achieved = tokens_per_s * flops_per_token(cfg) / 1e9
    peak = matmul_peak_gflops()
    print(f"3 x 512 LSTM, vocab 400, batch {args.batch} x window {args.window}, {args.threads} thread(s), "
          f"{args.precision} on {device.type}, torch {torch.__version__}")
    print(f"training: {seconds * 1e3:.0f} ms/step, {tokens_per_s:,.0f} tokens/s, {achieved:.1f} GFLOP/s")
    print(f"fp32 matmul peak (1024^3): {peak:.1f} GFLOP/s")
    ratio = achieved / peak
    print(f"achieved / peak = {ratio:.2f} (target >= 0.5): {'MET' if ratio >= 0.5 else 'NOT MET'}")


def data_wait(dataset, workers: int, steps: int, batch_size: int = 32) -> dict[str, float]:
    """Over `steps` optimizer steps of a small LSTM fed by the training loop's DataLoader with `workers`
    worker processes: the share of wall time spent waiting for batches ("share"), ms per step ("ms"),
    and CPU ms per step (user + sys, steady where the machine is shared): the training process's in all
    ("step_cpu") and in taking batches ("take_cpu"), and the workers' ("workers_cpu")."""
    import psutil

    from tunesmith.training.loader import EpochSampler, make_loader

    model = RNNLanguageModel(RNNConfig(vocab_size=dataset.representation.vocab_size, embed_dim=32,
                                       hidden_size=64, num_layers=1, dropout=0.0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = make_loader(dataset.train, EpochSampler(len(dataset.train), batch_size, seed=0), workers, False)
    batches, waited, take_cpu = iter(loader), 0.0, 0.0
    next(batches)  # worker start-up is paid once per run, not per step
    inner = getattr(loader, "iterator", None) or batches  # a plain DataLoader: its iterator holds the workers
    procs = [psutil.Process(w.pid) for w in getattr(inner, "_workers", [])]

    def workers_cpu() -> float:
        return sum(sum(p.cpu_times()[:2]) for p in procs)

    start, cpu, worker_start = time.perf_counter(), time.process_time(), workers_cpu()
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        batch = next(batches)
        waited += time.perf_counter() - t0
        take_cpu += time.process_time() - c0
        optimizer.zero_grad()
        model.loss(batch)["loss"].backward()
        optimizer.step()
    total = time.perf_counter() - start
    return {"share": waited / total, "ms": 1e3 * total / steps, "step_cpu": 1e3 * (time.process_time() - cpu) / steps,
            "take_cpu": 1e3 * take_cpu / steps, "workers_cpu": 1e3 * (workers_cpu() - worker_start) / steps}


def loader_report(dataset_dir: Path | None, steps: int) -> None:
    from tunesmith.data.build import prepare_data
    from tunesmith.data.config import DataConfig

    sources = {"bach, in memory": DataConfig(source="bach", representation="grid", window=64)}
    if dataset_dir is not None:
        sources[f"{dataset_dir.name}, streamed"] = DataConfig(source=str(dataset_dir), representation="grid",
                                                              window=64, streaming=True, transpose=2)
    load = os.getloadavg()
    lines = ["# DataLoader: share of step time waiting for data", "",
             f"`python benchmarks/training.py --loader{' --dataset ' + str(dataset_dir) if dataset_dir else ''}`"
             f" (1 x 64 LSTM, batch 32, {steps} steps, torch {torch.__version__})", "",
             "| data | workers | waiting | ms / step | CPU ms / step: trainer (taking batches) | workers "
             "| CPU ms / item, one process |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, config in sources.items():
        data = prepare_data(config, "tokens")
        item_ms = item_costs(data.train)
        for workers in (0, 2):
            w = data_wait(data, workers, steps)
            lines.append(f"| {name} | {workers} | {w['share']:.1%} | {w['ms']:.1f} | {w['step_cpu']:.1f} "
                         f"({w['take_cpu']:.2f}) | {w['workers_cpu']:.1f} | {item_ms} |")
            print(lines[-1], flush=True)
    lines += ["", f"load average (1, 5, 15 min) {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} before, "
              f"{', '.join(f'{a:.2f}' for a in os.getloadavg())} after, on {os.cpu_count()} cores: on a shared "
              "machine the workers get less than a core each and the waiting share rises.",
              "With 2 workers the step cannot wait on two idle cores when the trainer's CPU per step, minus what "
              "taking a batch costs it, is at least the workers' CPU per step (their share of the second core)."]
    print(lines[-1])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")


def item_cost_ms(dataset, n_items: int = 400) -> float:
    """Mean CPU ms (this process, user + sys: steady under load, where wall time is not) to build one
    training item (read, transpose, encode, cut), over items spread through the dataset; best of 3."""
    items = range(0, len(dataset), max(1, len(dataset) // n_items))
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for i in items:
            dataset[i]
        best = min(best, time.process_time() - start)
    return 1e3 * best / len(items)


def item_costs(dataset) -> str:
    """CPU ms per item as built, and for a streamed grid dataset also through the Score path it replaced
    (read a Score, transpose it, encode it), measured alternately in this run."""
    fast = item_cost_ms(dataset)
    if not getattr(dataset, "from_notes", False):
        return f"{fast:.3f}"
    dataset.from_notes = False
    slow = item_cost_ms(dataset)
    dataset.from_notes = True
    return f"{fast:.3f} (Score path {slow:.3f}: {slow / fast:.1f}x)"


if __name__ == "__main__":
    main()
