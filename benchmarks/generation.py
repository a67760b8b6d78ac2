"""Sampling speed and constrained decoding, measured side by side in one run, on one thread.

1. LSTM (3 x 512, batch 1), ms per token:
     refeed   : the seed projects' way: re-run the whole 100-token window through nn.LSTM for every token
     nn.LSTM  : nn.LSTM called on one step with its hidden state
     stepper  : tunesmith's RecurrentStepper (plain matrix products over the same weights), fp32 and int8
   Target: >= 20x faster than refeed and <= 1 ms per token.
2. Transformer (4 x 256, block_size 1,024, batch 1), per position scheme, ms per token at a full
   1,024-token context: re-feeding the window (one full forward per token) vs one KV-cache step.
   Target: the cache >= 20x faster.
3. Constrained decoding with the shipped event-token models (transformer-bach, lstm-bach: REMI):
   tokens sampled from [BOS] at temperature 1 without and with the grammar's mask; invalid tokens
   per 1,000 (the grammar's count: what miditok's decoder would drop or misplace) and ms per token.
   Target: 0 invalid tokens with the mask over >= 10,000 tokens per model.
Speeds are the fastest of 5 blocks of steps (other loads on a shared box only add time).
Writes benchmarks/results/generation.md. Usage: python benchmarks/generation.py [--tokens N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import torch

from tunesmith.generation.sampling import GrammarConstraint, sample_sequence
from tunesmith.io.atomic import write_atomic
from tunesmith.models.checkpoint import load_model
from tunesmith.models.distributions import SamplingConfig
from tunesmith.models.rnn import RNNConfig, RNNLanguageModel
from tunesmith.models.transformer import TransformerConfig, TransformerLM

warnings.filterwarnings("ignore", category=UserWarning)
RESULTS = Path(__file__).parent / "results" / "generation.md"


def time_per_token(step, n_tokens: int, warmup: int = 10, blocks: int = 5) -> float:
    """Milliseconds per call of `step`, after `warmup` calls: the fastest of `blocks` blocks of calls (on a
    shared box the other loads only ever add time, so the minimum is the machine's own speed)."""
    for _ in range(warmup):
        step()
    per_block, best = max(n_tokens // blocks, 1), float("inf")
    for _ in range(blocks):
        start = time.perf_counter()
        for _ in range(per_block):
            step()
        best = min(best, (time.perf_counter() - start) / per_block)
    return best * 1e3


def lstm_section(n_tokens: int) -> list[str]:
    torch.manual_seed(0)
    model = RNNLanguageModel(RNNConfig(vocab_size=400, embed_dim=128, hidden_size=512, num_layers=3)).eval()
    window, token = torch.randint(1, 400, (1, 100)), torch.tensor([5])
    results = {"refeed (100-token window)": time_per_token(lambda: model(window)[:, -1], n_tokens // 5)}
    state = [None]

    def lstm_step():
        out, state[0] = model.rnn(model.embed(token)[:, None], state[0])
        return model.head(out[:, -1])

    results["nn.LSTM one step + state"] = time_per_token(lstm_step, n_tokens)
    for label, quantize in (("stepper fp32", False), ("stepper int8", True)):
        stepper = model.stepper(quantize=quantize)
        st = [stepper.initial_state(1)]

        def step(stepper=stepper, st=st):
            logits, st[0] = stepper(token, st[0])
            return logits

        results[label] = time_per_token(step, n_tokens)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    lines = [f"3 x 512 LSTM, {params:.1f}M parameters, vocab 400, batch 1", "",
             "| method | ms/token | vs refeed |", "|---|---|---|"]
    base = results["refeed (100-token window)"]
    lines += [f"| {label} | {ms:.3f} | {base / ms:.1f}x |" for label, ms in results.items()]
    best = min(results["stepper fp32"], results["stepper int8"])
    verdict = "MET" if base / best >= 20 and best <= 1 else "NOT MET"
    return lines + ["", f"target >= 20x and <= 1 ms/token: best {base / best:.1f}x, {best:.3f} ms/token: {verdict}"]


def transformer_speed(position: str, n_tokens: int, context: int) -> tuple[float, float]:
    """(re-feed, KV-cache step) ms per token of a 4 x 256 Transformer whose context holds `context` tokens."""
    torch.manual_seed(0)
    config = TransformerConfig(vocab_size=400, block_size=context, n_layer=4, n_head=4, n_embd=256,
                               dropout=0.0, position=position)
    model = TransformerLM(config).eval()
    window, token = torch.randint(1, 400, (1, context)), torch.tensor([5])
    with torch.no_grad():
        refeed = time_per_token(lambda: model(window)[:, -1], 5, warmup=1)
        stepper = model.stepper()
        state = stepper.initial_state(1)
        for t in range(context):  # fill the cache to the full window first
            _, state = stepper(window[:, t], state)
        cached = time_per_token(lambda: stepper(token, state), n_tokens)  # the cache slides as it goes
    return refeed, cached


def transformer_section(n_tokens: int, context: int = 1024) -> list[str]:
    lines = [f"4 x 256 Transformer, 4 heads, block_size {context}, vocab 400, batch 1, context full "
             f"({context} tokens)", "", "| position | refeed ms/token | KV cache ms/token | speed-up |",
             "|---|---|---|---|"]
    worst = float("inf")
    for position in ("relative", "rope", "alibi"):
        refeed, cached = transformer_speed(position, n_tokens, context)
        worst = min(worst, refeed / cached)
        lines.append(f"| {position} | {refeed:.2f} | {cached:.3f} | {refeed / cached:.1f}x |")
    return lines + ["", f"target: KV cache >= 20x faster than re-feeding: worst {worst:.1f}x: "
                        f"{'MET' if worst >= 20 else 'NOT MET'}"]


def sample_counted(loaded, n_steps: int, batch: int, enforce: bool, seed: int) -> tuple[int, int, float]:
    """(invalid tokens, tokens sampled, ms per token) sampling n_steps x batch tokens from [BOS]."""
    rep = loaded.representation
    prefix = torch.full((batch, 1), rep.bos_id, dtype=torch.long)
    banned = sorted({rep.pad_id, rep.bos_id, rep.eos_id})
    constraint = GrammarConstraint(rep.grammar(), [], batch, enforce=enforce)
    start = time.perf_counter()
    sample_sequence(loaded.model, prefix, n_steps, SamplingConfig(), torch.Generator().manual_seed(seed), banned,
                    constraint=constraint)
    elapsed = time.perf_counter() - start
    return int(constraint.invalid.sum()), n_steps * batch, elapsed / (n_steps * batch) * 1e3


def mask_cost(loaded, batch: int, steps: int = 300) -> float:
    """Milliseconds per token of the mask alone (allowed() + masked_fill + update), at `batch`."""
    rep = loaded.representation
    constraint = GrammarConstraint(rep.grammar(), [], batch)
    logits = torch.zeros(batch, rep.vocab_size)
    start = time.perf_counter()
    for _ in range(steps):
        masked = logits.masked_fill(~constraint.allowed(), float("-inf"))
        constraint.update(masked.argmax(-1))
    return (time.perf_counter() - start) / (steps * batch) * 1e3


def constrained_section(n_steps: int, batch: int) -> list[str]:
    lines = [f"{batch} pieces x {n_steps} tokens per run, from [BOS], temperature 1, seed 0", "",
             "| model | mask | tokens | invalid | per 1,000 | ms/token (batch) | mask alone ms/token |",
             "|---|---|---|---|---|---|---|"]
    ok = True
    for name in ("transformer-bach", "lstm-bach"):
        loaded = load_model(name)
        alone = mask_cost(loaded, batch)
        for enforce in (False, True):
            invalid, total, ms = sample_counted(loaded, n_steps, batch, enforce, seed=0)
            ok &= not enforce or (invalid == 0 and total >= 10_000)
            lines.append(f"| {name} | {'on' if enforce else 'off'} | {total:,} | {invalid} | "
                         f"{invalid / total * 1000:.2f} | {ms:.3f} | {alone if enforce else 0:.4f} |")
    return lines + ["", f"target: 0 invalid tokens with the mask over >= 10,000 tokens per model: "
                        f"{'MET' if ok else 'NOT MET'}"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=300, help="timed steps per speed measurement")
    parser.add_argument("--quick", action="store_true", help="fewer constrained-decoding tokens (a smoke run)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    steps, batch = (64, 4) if args.quick else (640, 16)
    sections = {"LSTM sampling speed": lstm_section(args.tokens),
                "Transformer: KV cache vs re-feeding at a 1,024-token context": transformer_section(args.tokens),
                "Constrained decoding (REMI grammar mask)": constrained_section(steps, batch)}
    load = os.getloadavg()[0]
    head = (f"# Generation benchmarks\n\n`python benchmarks/generation.py` (1 thread, torch {torch.__version__}, "
            f"{os.cpu_count()} cores, load average {load:.1f} at the start: absolute ms scale with it, ratios less)\n")
    body = "".join(f"\n## {title}\n\n" + "\n".join(lines) + "\n" for title, lines in sections.items())
    print(head + body)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(RESULTS, (head + body).encode())


if __name__ == "__main__":
    main()
