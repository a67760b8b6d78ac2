"""The shared sampler: filters against hand-computed cases, incremental sampling, stop tokens."""

from __future__ import annotations

import math

import numpy as np
import torch

from tunesmith.core.score import make_track, new_score
from tunesmith.generation.sampling import sample_sequence
from tunesmith.models.distributions import SamplingConfig, filter_logits
from tunesmith.scoring.token_report import longest_repeated_pitch_run, ngram_baselines


def test_top_k_keeps_k_most_likely():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0]])
    kept = torch.isfinite(filter_logits(logits, SamplingConfig(top_k=2)))
    assert kept.tolist() == [[False, True, True, False]]


def test_top_p_keeps_the_token_that_crosses_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    kept = torch.isfinite(filter_logits(probs.log(), SamplingConfig(top_p=0.7)))
    assert kept.tolist() == [[True, True, False, False]]  # 0.5 < 0.7, 0.5 + 0.3 crosses it


def test_temperature_scales_logits():
    logits = torch.tensor([[2.0, 4.0]])
    assert torch.allclose(filter_logits(logits, SamplingConfig(temperature=2.0)), torch.tensor([[1.0, 2.0]]))


class CountingStepper:
    """Deterministic toy stepper: always predicts (last token + 1) mod 5; counts calls and their widths."""

    """A model whose next token is (last token + 1) mod 5, and that records what it is fed."""

    def __init__(self):
        self.widths = []

    def stepper(self):
        return self

    def initial_state(self, batch, device, generator=None):
        return None

    def __call__(self, tokens, state):
        self.widths.append(tokens.shape)
        return torch.nn.functional.one_hot((tokens + 1) % 5, 5).float() * 50, state

    def choose(self, logits, sampling, generator):
        return logits.argmax(-1)


def test_sample_sequence_feeds_one_token_per_step_and_stops_when_finished():
    model = CountingStepper()
    out = sample_sequence(model, torch.tensor([[0, 1]]), 10, SamplingConfig(),
                          finished=lambda new: bool((new == 4).any()), check_every=1)
    assert out.tolist() == [[2, 3, 4]]
    assert all(shape == (1,) for shape in model.widths)  # never re-fed a window
    assert len(model.widths) == 2 + 2  # primer tokens, then one per new token before the stop


def test_sample_sequence_never_draws_banned_ids():
    out = sample_sequence(CountingStepper(), torch.tensor([[0], [2]]), 12, SamplingConfig(), banned=[3])
    assert out.shape == (2, 12) and not (out == 3).any()


def test_ngram_baselines_hand_computed():
    train = [np.array([3, 3, 4])]
    valid = [np.array([3, 4])]
    result = ngram_baselines(train, valid, vocab=5, bos=1, eos=2)
    # unigram counts over train targets [3, 3, 4, 2]: add-one -> p(3)=3/9, p(4)=2/9, p(2)=2/9
    expected = -(math.log(3 / 9) + math.log(2 / 9) + math.log(2 / 9)) / 3
    assert math.isclose(result["unigram_nll"], expected)
    assert result["bigram_nll"] <= result["unigram_nll"]


def test_longest_repeated_pitch_run():
    score = new_score()
    score.tracks.append(make_track([60, 62, 62, 62, 64], [0, 1, 2, 3, 4], [1] * 5))
    assert longest_repeated_pitch_run(score) == 3
