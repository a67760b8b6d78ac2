"""Training throughput of the 3 x 512 LSTM next-token model vs this CPU's measured fp32 matmul peak.

Both are measured in this one run, on the same thread count (default 1: recurrent training was fastest
with one thread per process on our 2-core machines). FLOPs per token are counted analytically:
forward = 2 x (4h x (in + h)) per layer + 2 x h x vocab for the head; backward = 2 x forward.
Target: achieved GFLOP/s at least half of the matmul peak.
Usage: python benchmarks/training.py [--threads N] [--batch B] [--window T] [--steps S]
"""

from __future__ import annotations

import argparse
import time

import torch

from tunesmith.models.rnn import RNNConfig, RNNLanguageModel


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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = RNNConfig(vocab_size=400, embed_dim=128, hidden_size=512, num_layers=3, dropout=0.2)
    model = RNNLanguageModel(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = {"tokens": torch.randint(1, cfg.vocab_size, (args.batch, args.window + 1))}

    def step() -> None:
        optimizer.zero_grad()
        model.loss(batch)["loss"].backward()
        optimizer.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = (time.perf_counter() - start) / args.steps
    tokens_per_s = args.batch * args.window / seconds
    achieved = tokens_per_s * flops_per_token(cfg) / 1e9
    peak = matmul_peak_gflops()
    print(f"3 x 512 LSTM, vocab 400, batch {args.batch} x window {args.window}, {args.threads} thread(s), "
          f"torch {torch.__version__}")
    print(f"training: {seconds * 1e3:.0f} ms/step, {tokens_per_s:,.0f} tokens/s, {achieved:.1f} GFLOP/s")
    print(f"fp32 matmul peak (1024^3): {peak:.1f} GFLOP/s")
    ratio = achieved / peak
    print(f"achieved / peak = {ratio:.2f} (target >= 0.5): {'MET' if ratio >= 0.5 else 'NOT MET'}")


if __name__ == "__main__":
    main()
