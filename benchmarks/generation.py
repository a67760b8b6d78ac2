"""Sampling speed of a 3 x 512 LSTM at batch 1 on one thread, measured side by side in one run.

Compares ms per token for:
  refeed   : the seed projects' way: re-run the whole 100-token window through nn.LSTM for every token
  nn.LSTM  : nn.LSTM called on one step with its hidden state
  stepper  : tunesmith's RecurrentStepper (plain matrix products over the same weights), fp32
  int8     : the same stepper with int8 dynamically-quantized weights (4x fewer bytes read per token)
and prints the ratios against refeed. Target: >= 20x faster than refeed and <= 1 ms per token.
Usage: python benchmarks/generation.py [--tokens N]
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from tunesmith.models.rnn import RNNConfig, RNNLanguageModel

warnings.filterwarnings("ignore", category=UserWarning)


def time_per_token(step, n_tokens: int) -> float:
    for _ in range(10):  # warm-up
        step()
    start = time.perf_counter()
    for _ in range(n_tokens):
        step()
    return (time.perf_counter() - start) / n_tokens * 1e3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = RNNLanguageModel(RNNConfig(vocab_size=400, embed_dim=128, hidden_size=512, num_layers=3)).eval()
    window = torch.randint(1, 400, (1, 100))
    token = torch.tensor([5])
    results = {}
    with torch.no_grad():
        results["refeed (100-token window)"] = time_per_token(lambda: model(window)[:, -1], args.tokens // 5)
        state = [None]

        def lstm_step():
            out, state[0] = model.rnn(model.embed(token)[:, None], state[0])
            return model.head(out[:, -1])

        results["nn.LSTM one step + state"] = time_per_token(lstm_step, args.tokens)
        for label, quantize in (("stepper fp32", False), ("stepper int8", True)):
            stepper = model.stepper(quantize=quantize)
            st = [stepper.initial_state(1)]

            def step(stepper=stepper, st=st):
                logits, st[0] = stepper(token, st[0])
                return logits

            results[label] = time_per_token(step, args.tokens)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"3 x 512 LSTM, {params:.1f}M parameters, vocab 400, batch 1, 1 thread, torch {torch.__version__}")
    base = results["refeed (100-token window)"]
    for label, ms in results.items():
        print(f"{label:<28} {ms:8.3f} ms/token   {base / ms:6.1f}x vs refeed")
    best = min(results["stepper fp32"], results["stepper int8"])
    print(f"target: >= 20x and <= 1 ms/token -> best {base / best:.1f}x, {best:.3f} ms/token: "
          f"{'MET' if base / best >= 20 and best <= 1 else 'NOT MET'}")


if __name__ == "__main__":
    main()
