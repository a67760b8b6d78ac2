"""Figures for a trained token model, on the held-out pieces of its own split (issue 3's report).

- exact validation NLL (nats per token) over whole valid pieces ([bos] + tokens + [eos],
  every token after bos predicted from everything before it in the piece);
- unigram and interpolated-bigram baselines estimated on the training pieces of the same split, their
  interpolation weight chosen on valid (so the baseline is, if anything, flattered);
- degeneracy of generated pieces next to real ones as the representation holds them (`canonical`),
  cut to the same number of bars: pitch-class
  entropy (bits), distinct pitches, longest run of one repeated pitch (notes in a row).
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import torch
from symusic import Score

from tunesmith.core.score import bars_after, note_table
from tunesmith.data.build import prepare_data
from tunesmith.data.config import DataConfig
from tunesmith.evaluation.metrics import pitch_class_entropy
from tunesmith.models.checkpoint import LoadedModel
from tunesmith.scoring.likelihood import framed


@torch.no_grad()
def model_nll(loaded: LoadedModel, pieces: list[np.ndarray]) -> dict[str, float]:
    """Exact per-token NLL (nats) of the model over whole pieces ([BOS] + tokens + [EOS])."""
    total, count = 0.0, 0
    for piece in pieces:
        log_p, units = loaded.model.log_likelihood(framed(loaded, piece))
        total, count = total - log_p, count + units
    return {"nll": total / max(count, 1), "tokens": count}


def ngram_baselines(train: list[np.ndarray], valid: list[np.ndarray], vocab: int, bos: int, eos: int) -> dict:
    """Add-one unigram NLL, and bigram interpolated with it (weight chosen on valid), nats/token."""
    seqs = lambda ps: [[bos, *p.tolist(), eos] for p in ps]  # noqa: E731
    uni = Counter(t for s in seqs(train) for t in s[1:])
    big = Counter(pair for s in seqs(train) for pair in zip(s[:-1], s[1:], strict=False))
    ctx = Counter(a for s in seqs(train) for a in s[:-1])
    n_uni = sum(uni.values())
    p_uni = lambda t: (uni[t] + 1) / (n_uni + vocab)  # noqa: E731
    pairs = [pair for s in seqs(valid) for pair in zip(s[:-1], s[1:], strict=False)]
    unigram = -sum(math.log(p_uni(b)) for _, b in pairs) / len(pairs)

    def bigram_nll(weight: float) -> float:
        return -sum(math.log(weight * big[(a, b)] / max(ctx[a], 1) * (ctx[a] > 0) + (1 - weight) * p_uni(b))
                    for a, b in pairs) / len(pairs)

    weight = min((w / 20 for w in range(0, 20)), key=bigram_nll)
    return {"unigram_nll": unigram, "bigram_nll": bigram_nll(weight), "bigram_weight": weight}


def longest_repeated_pitch_run(score: Score) -> int:
    """Most consecutive notes (by onset order, pitched tracks) that share one pitch."""
    table = note_table(score)
    pitches = table["pitch"][~table["is_drum"]]
    best = run = 1 if len(pitches) else 0
    for a, b in zip(pitches[:-1], pitches[1:], strict=False):
        run = run + 1 if a == b else 1
        best = max(best, run)
    return best


def degeneracy(scores: list[Score]) -> dict[str, float]:
    """Mean pitch-class entropy (bits), distinct pitches, and longest repeated-pitch run over pieces."""
    def distinct(s: Score) -> int:
        return len(set(note_table(s)["pitch"].tolist()))

    return {"pc_entropy_bits": float(np.mean([pitch_class_entropy(s) for s in scores])),
            "distinct_pitches": float(np.mean([distinct(s) for s in scores])),
            "longest_repeat_run": float(np.mean([longest_repeated_pitch_run(s) for s in scores]))}


def token_model_report(loaded: LoadedModel, generated: list[Score], bars: int = 16) -> dict:
    """Everything above for one checkpoint, on the split it was trained with; `generated` are pieces of
    `bars` bars sampled from it (by `generation.generate`)."""
    data_config = DataConfig.model_validate(loaded.checkpoint["run_config"]["data"])
    data = prepare_data(data_config, "tokens", loaded.representation)
    rep = loaded.representation
    train = [rep.encode(s) for s in data.scores["train"]]
    valid = [rep.encode(s) for s in data.scores["valid"]]
    valid = [v for v in valid if len(v)]
    return {
        "model": loaded.checkpoint["model"]["name"],
        "valid": model_nll(loaded, valid),
        "baselines": ngram_baselines(train, valid, rep.vocab_size, rep.bos_id, rep.eos_id),
        "generated": degeneracy(generated),
        "real_valid": degeneracy([rep.canonical(bars_after(s, bars)) for s in data.scores["valid"]]),
        "generated_pieces": len(generated),
    }
