"""band's piano gate (session 8): piano's predictor reads whether piano plays in the next window, so a playing
piano's latent is drawn from playing windows' Gaussian, not from a blur of playing and silent windows."""

from __future__ import annotations

import pytest
import torch

from tunesmith.models.latent_predictor import LatentPredictors, context_features

PIANO = 0
pytestmark = pytest.mark.usefixtures("one_thread")


def _toy(n: int = 2048, seed: int = 0) -> dict[str, torch.Tensor]:
    """Window pairs whose piano plays at t+1 by a coin the summary cannot see: a playing piano's latent is +2
    in every dimension, a silent one's -2 (the other groups: noise)."""
    torch.manual_seed(seed)
    sounded = torch.rand(n, 3, 5) < 0.5
    plays = torch.rand(n, 5) < 0.5
    z_next = torch.randn(n, 5, 4)
    z_next[:, PIANO] = torch.where(plays[:, PIANO, None], 2.0, -2.0)
    return {"z_t": torch.randn(n, 5, 4), "z_next": z_next, "history": context_features(sounded, 2), "plays": plays}


def _trained(gate: bool, data: dict[str, torch.Tensor]) -> LatentPredictors:
    predictors = LatentPredictors(4, 32, 1, 0.0, context=2, gate=gate)
    optimizer = torch.optim.Adam(predictors.parameters(), lr=0.01)
    valid = torch.ones(len(data["z_t"]), dtype=torch.bool)
    for _ in range(200):
        loss, _ = predictors.loss(data["z_t"], data["z_next"], valid, 0.0, True, data["plays"],
                                  history=data["history"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return predictors.eval()


def test_given_that_piano_plays_its_predictor_gives_the_playing_latent_not_the_blur():
    gated = _trained(True, _toy())
    data = _toy(512, seed=1)  # pieces neither model saw
    ones, zeros = torch.ones(len(data["z_t"])), torch.zeros(len(data["z_t"]))
    playing = gated.piano_next(data["z_t"], None, data["history"], ones)[0]
    silent = gated.piano_next(data["z_t"], None, data["history"], zeros)[0]
    assert float((playing - 2).abs().mean()) < 0.3 and float((silent + 2).abs().mean()) < 0.3
    blurred = _trained(False, _toy()).piano_next(data["z_t"], None, data["history"])[0]
    truth = data["z_next"][:, PIANO]
    assert float((blurred - truth).abs().mean()) > 1.5  # without the flag the coin cannot be known: +-2 misses
    given = gated.piano_next(data["z_t"], None, data["history"], data["plays"][:, PIANO].float())[0]
    assert float((given - truth).abs().mean()) < 0.3
    expected = gated.expected_next(data["z_t"], data["z_next"], history=data["history"])[:, PIANO]
    p = torch.sigmoid(gated.gate(data["history"]))
    assert torch.allclose(expected, silent + p * (playing - silent), atol=1e-5)


def test_a_gated_predictor_asks_for_piano_presence_in_training_and_generation():
    predictors = LatentPredictors(4, 16, 1, 0.0, context=2, gate=True)
    data = _toy(8)
    with pytest.raises(ValueError, match="piano's presence"):
        predictors.loss(data["z_t"], data["z_next"], torch.ones(8, dtype=torch.bool), 0.0, True,
                        history=data["history"])
    with pytest.raises(ValueError, match="PianoGate"):
        predictors.step(data["z_t"], 1.0, None, torch.zeros(5, 4), history=data["history"])
