"""The shared sampler: filters against hand-computed cases, incremental sampling, stop tokens."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tunesmith.core.errors import UserError
from tunesmith.core.score import make_track, new_score
from tunesmith.generation.sampling import sample_sequence
from tunesmith.models.distributions import SamplingConfig, filter_logits, is_default, sample_categorical
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


def test_min_p_keeps_tokens_above_a_share_of_the_most_likely():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.9, 0.05, 0.03, 0.02]])
    kept = torch.isfinite(filter_logits(probs.log(), SamplingConfig(min_p=0.2)))
    # floors 0.2 x 0.5 = 0.1 and 0.2 x 0.9 = 0.18: the cut follows the model's confidence
    assert kept.tolist() == [[True, True, True, False], [True, False, False, False]]
    assert not is_default(SamplingConfig(min_p=0.2))


def test_min_p_applies_after_the_temperature():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    cold = torch.isfinite(filter_logits(probs.log(), SamplingConfig(min_p=0.3)))
    hot = torch.isfinite(filter_logits(probs.log(), SamplingConfig(min_p=0.3, temperature=2.0)))
    assert cold.tolist() == [[True, True, True, False]]  # 0.05 / 0.5 = 0.1 < 0.3
    assert hot.tolist() == [[True, True, True, True]]  # at T = 2: sqrt(0.05 / 0.5) = 0.32 >= 0.3


def test_min_p_samples_only_kept_tokens_at_their_renormalised_rates():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log().expand(20_000, 4)
    draws = sample_categorical(logits, SamplingConfig(min_p=0.2), torch.Generator().manual_seed(0))
    share = torch.bincount(draws, minlength=4).float() / len(draws)
    torch.testing.assert_close(share, torch.tensor([0.5, 0.3, 0.15, 0.0]) / 0.95, atol=0.015, rtol=0)


@pytest.mark.parametrize("value", [0, 1, 1.5, -0.1, float("nan"), True])
def test_min_p_outside_zero_one_is_one_sentence(value):
    with pytest.raises(UserError, match="--min-p must be a number strictly between 0 and 1"):
        SamplingConfig(min_p=value)


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


def test_generate_refuses_a_bad_min_p_in_one_sentence(tmp_path, monkeypatch, capsys):
    from tunesmith.cli import main

    monkeypatch.setattr("sys.argv", ["tunesmith", "generate", "transformer-bach", "--out", str(tmp_path / "g"),
                                     "--min-p", "1"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--min-p must be a number strictly between 0 and 1" in err
    assert "Traceback" not in err and not (tmp_path / "g").exists()
