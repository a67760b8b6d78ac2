"""`lstm-nade-mix` with test-time transpositions, per-member key orders and EM-fitted weights: every
conditional stays an exact distribution over frames, and the sampler draws from that same distribution."""

from __future__ import annotations

import itertools

import pytest
import torch

from tunesmith.core.errors import UserError
from tunesmith.generation.sampling import sample_sequence
from tunesmith.models import build_model, make_config
from tunesmith.models.distributions import SamplingConfig
from tunesmith.models.frame_nade import chroma_order
from tunesmith.models.nade_mixture import NADEMixture, em_weights

TINY = {"keys": 5, "hidden_size": 8, "num_layers": 1, "nade_hidden": 6, "dropout": 0.0, "transpose": 2}
FRAMES = torch.tensor(list(itertools.product([0.0, 1.0], repeat=5)))  # all 32 frames of 5 keys
HISTORY = torch.tensor([[1.0, 0, 1, 0, 0], [0, 1, 1, 0, 1]])


def _mixture(**overrides) -> NADEMixture:
    torch.manual_seed(0)
    model = build_model("lstm-nade-mix", make_config("lstm-nade-mix", {**TINY, **overrides}, {})).eval()
    with torch.no_grad():  # sharp NADE weights: members that disagree, so a wrong mixture shows
        for member in model.members:
            torch.nn.init.normal_(member.w, std=1.5)
            torch.nn.init.normal_(member.v, std=1.5)
    return model


def _last_frame_probabilities(model) -> torch.Tensor:
    """q(frame | HISTORY) for all 32 frames (32,)."""
    pieces = torch.cat([HISTORY.expand(32, -1, -1), FRAMES.unsqueeze(1)], 1)
    with torch.no_grad():
        return model.frame_log_likelihood(pieces)[:, -1].exp()


def test_shifted_weighted_mixture_is_a_distribution_and_the_weighted_sum_of_rolled_members():
    weights = [0.5, 2.0, 0.0, 1.0, 3.0, 1.5, 0.25, 0.75, 1.0]  # 3 members x shifts -1, 0, 1
    model = _mixture(members=3, order="up,down,down", shifts=1, weights=weights)
    assert [m.config.order for m in model.members] == ["up", "down", "down"]
    mixed = _last_frame_probabilities(model)
    assert float(mixed.sum()) == pytest.approx(1.0, abs=1e-5)
    pieces = torch.cat([HISTORY.expand(32, -1, -1), FRAMES.unsqueeze(1)], 1)
    expected = torch.zeros(32)
    with torch.no_grad():
        for w, (k, s) in zip(weights, itertools.product(range(3), (-1, 0, 1)), strict=True):
            code = torch.full((32,), s)  # member k reads the rolled piece and is told the shift
            expected += w / sum(weights) * model.members[k].frame_log_likelihood(
                torch.roll(pieces, s, -1), None, code)[:, -1].exp()
    assert torch.allclose(mixed, expected, atol=1e-6)
    assert not torch.allclose(mixed, _last_frame_probabilities(_mixture(members=3, order="up,down,down")))


def _fixed_share_by_hand(model, pieces: torch.Tensor, share: float) -> torch.Tensor:
    """log q (batch, time) of a fixed-share mixture, one frame and one piece at a time, from the
    components' own conditionals."""
    with torch.no_grad():
        per_component = model.component_log_likelihoods(pieces).double()  # (components, batch, time)
    prior = torch.tensor(model.config.weights, dtype=torch.float64)
    prior = prior / prior.sum()
    out = torch.zeros(pieces.shape[:2], dtype=torch.float64)
    for row in range(len(pieces)):
        w = prior.clone()
        for t in range(pieces.shape[1]):
            p = per_component[:, row, t].exp()
            out[row, t] = (w * p).sum().log()
            w = (1 - share) * w * p / (w * p).sum() + share * prior
    return out


@pytest.mark.parametrize("share", [0.0, 0.3])
def test_fixed_share_weights_follow_the_pieces_past_and_stay_a_distribution(share):
    weights = [1.0, 2.0, 0.5, 3.0, 1.0, 1.0]
    model = _mixture(members=2, shifts=1, weights=weights, share=share)
    pieces = torch.cat([HISTORY.expand(32, -1, -1), FRAMES.unsqueeze(1)], 1)
    with torch.no_grad():
        log_q = model.frame_log_likelihood(pieces)
    assert torch.allclose(log_q.double(), _fixed_share_by_hand(model, pieces, share), atol=1e-5)
    assert float(log_q[:, -1].exp().sum()) == pytest.approx(1.0, abs=1e-5)
    static = _mixture(members=2, shifts=1, weights=weights)
    with torch.no_grad():
        assert torch.allclose(log_q[:, 0], static.frame_log_likelihood(pieces)[:, 0], atol=1e-6)  # no past yet
        assert not torch.allclose(log_q[:, -1], static.frame_log_likelihood(pieces)[:, -1], atol=1e-3)


@pytest.mark.parametrize("share, order", [(1.0, "both"), (0.3, "both"), (1.0, "chroma,down")])
def test_sampler_draws_the_shifted_mixtures_frames_with_its_probabilities(share, order):
    model = _mixture(members=2, order=order, shifts=2, weights=[1, 2, 3, 0, 1, 0.5, 2, 1, 1, 4], share=share)
    mixed = _last_frame_probabilities(model)
    prefix = torch.cat([torch.zeros(1, 5), HISTORY]).expand(6000, -1, -1)  # the zero start frame, then the past
    drawn = sample_sequence(model, prefix, 1, SamplingConfig(), torch.Generator().manual_seed(0))[:, 0]
    index = (drawn * 2 ** torch.arange(4, -1, -1)).sum(-1).long()
    empirical = torch.bincount(index, minlength=32).float() / len(index)
    assert 0.5 * float((empirical - mixed).abs().sum()) < 0.04  # total variation distance


def test_from_members_keeps_orders_shifts_and_weights():
    model = _mixture(members=3, order="up,down,down", shifts=1)
    assembled = NADEMixture.from_members(list(model.members), shifts=1, weights=[1.0] * 9).eval()
    assert (assembled.config.order, assembled.config.shifts) == ("up,down,down", 1)
    assert torch.allclose(_last_frame_probabilities(assembled), _last_frame_probabilities(model), atol=1e-6)
    alternating = NADEMixture.from_members([model.members[0], model.members[1]])
    assert (alternating.config.order, alternating.config.shifts) == ("both", 0)


@pytest.mark.parametrize("overrides, message", [
    ({"shifts": 3}, "shifts"),  # beyond the transposition range the members were trained on
    ({"shifts": 1, "weights": [1.0] * 5}, "weights"),  # 2 members x 3 shifts = 6
    ({"weights": [1.0, -1.0]}, "weights"),
    ({"weights": [0.0, 0.0]}, "weights"),
    ({"order": "up,down,up"}, "each of the 2 members"),
    ({"order": "up,sideways"}, "each of the 2 members"),
    ({"order": "sideways"}, "order must be one of both, up, down, chroma"),
])
def test_bad_mixture_configs_are_one_sentence(overrides, message):
    with pytest.raises(UserError, match=message):
        make_config("lstm-nade-mix", {**TINY, "members": 2, **overrides}, {})


def test_em_recovers_the_weights_that_generated_the_frames():
    generator = torch.Generator().manual_seed(0)
    p = torch.tensor([[0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])  # two components over 3 outcomes
    source = (torch.rand(20000, generator=generator) < 0.3).long()  # 30 % from component 1
    outcome = torch.multinomial(p[source], 1, generator=generator).squeeze(1)
    weights = em_weights(p[:, outcome].log())
    assert weights[1] == pytest.approx(0.3, abs=0.03) and sum(weights) == pytest.approx(1.0)


def test_chroma_order_puts_the_keys_by_pitch_class_and_is_a_distribution():
    order = chroma_order(88)
    assert order[:8].tolist() == [3, 15, 27, 39, 51, 63, 75, 87]  # C1 .. C8 (key 0 is A0)
    assert sorted(order.tolist()) == list(range(88))
    nade = build_model("lstm-nade", make_config("lstm-nade", {**TINY, "keys": 88, "order": "chroma"}, {}))
    x = torch.rand(3, 88)
    assert torch.equal(nade._unordered(nade._ordered(x)), x) and torch.equal(nade._ordered(x)[:, 0], x[:, 3])
    model = _mixture(members=2, order="chroma,up", shifts=1)
    assert float(_last_frame_probabilities(model).sum()) == pytest.approx(1.0, abs=1e-5)


def test_fixed_share_mixture_reads_only_the_past_of_its_own_piece():
    model = _mixture(members=2, order="up,chroma", shifts=1, share=0.3)
    generator = torch.Generator().manual_seed(1)
    pieces = (torch.rand(2, 9, 5, generator=generator) < 0.4).float()
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 6:] = False  # the second piece is 6 frames long, padded
    changed = pieces.clone()
    changed[0, 5:] = 1 - changed[0, 5:]  # a different future for piece 0
    changed[1, 6:] = 1.0  # and different padding for piece 1
    with torch.no_grad():
        before, after = model.frame_log_likelihood(pieces, mask), model.frame_log_likelihood(changed, mask)
        alone = model.frame_log_likelihood(pieces[1:, :6])
    assert torch.allclose(before[0, :5], after[0, :5], atol=1e-6) and not torch.allclose(before[0, 5:], after[0, 5:])
    assert torch.allclose(before[1], after[1], atol=1e-6) and (before[1, 6:] == 0).all()
    assert torch.allclose(before[1, :6], alone[0], atol=1e-6)
