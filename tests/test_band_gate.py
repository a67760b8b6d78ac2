"""band's presence gates (session 8): each group's predictor reads whether that group plays in the next window,
so a playing group's latent is drawn from playing windows' Gaussian, not from a blur of playing and silent
windows."""

from __future__ import annotations

import pytest
import torch

from tunesmith.models.latent_predictor import LatentPredictors, context_features

pytestmark = pytest.mark.usefixtures("one_thread")


def _toy(n: int = 2048, seed: int = 0) -> dict[str, torch.Tensor]:
    """Window pairs in which each group plays at t+1 by a coin the summary cannot see: a playing group's latent is
    +2 in every dimension, a silent one's -2."""
    torch.manual_seed(seed)
    sounded = torch.rand(n, 3, 5) < 0.5
    plays = torch.rand(n, 5) < 0.5
    z_next = torch.where(plays[:, :, None], 2.0, -2.0).expand(n, 5, 4).clone()
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


def _means(predictors: LatentPredictors, data: dict[str, torch.Tensor], gated: torch.Tensor | None) -> torch.Tensor:
    """Predicted means (B, 5, D), teacher forced, given each group's presence `gated` (B, 5)."""
    piano = predictors.piano_next(data["z_t"], None, data["history"], None if gated is None else gated[:, 0])[0]
    others = predictors.others_next(data["z_t"], data["z_next"], None, data["history"], gated)[0]
    return torch.cat([piano[:, None], others], 1)


def test_given_that_a_group_plays_its_predictor_gives_the_playing_latent_not_the_blur():
    gated = _trained(True, _toy())
    data = _toy(512, seed=1)  # pieces neither model saw
    truth, ones = data["z_next"], torch.ones(512, 5)
    playing, silent = _means(gated, data, ones), _means(gated, data, 0 * ones)
    assert float((playing - 2).abs().mean()) < 0.3 and float((silent + 2).abs().mean()) < 0.3
    assert float((_means(gated, data, data["plays"].float()) - truth).abs().mean()) < 0.3
    piano_blurred = _means(_trained(False, _toy()), data, None)[:, 0]  # piano sees no t+1 latent of another group
    assert float((piano_blurred - truth[:, 0]).abs().mean()) > 1.5  # without the flag a coin's +-2 is missed
    p = torch.sigmoid(gated.gate_logits(data["history"], data["plays"]))[:, :, None]
    expected = gated.expected_next(data["z_t"], data["z_next"], history=data["history"], plays=data["plays"])
    assert torch.allclose(expected, silent + p * (playing - silent), atol=1e-5)


def test_gates_read_the_groups_decided_before_them():
    """Guitar plays next exactly when piano does: its gate, which reads piano's coin, learns that; piano's cannot."""
    torch.manual_seed(0)
    predictors = LatentPredictors(4, 32, 1, 0.0, context=2, gate=True)
    history = context_features(torch.rand(1024, 3, 5) < 0.5, 2)
    plays = torch.rand(1024, 5) < 0.5
    plays[:, 1] = plays[:, 0]
    optimizer = torch.optim.Adam(predictors.gate.parameters(), lr=0.02)
    for _ in range(200):
        loss = predictors.gate_loss(history, plays, torch.ones(1024, dtype=torch.bool))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    p = torch.sigmoid(predictors.gate_logits(history, plays))
    assert float((p[:, 1] - plays[:, 1].float()).abs().mean()) < 0.1
    assert float((p[:, 0] - 0.5).abs().mean()) < 0.15


def test_a_gated_predictor_asks_for_presence_in_training_and_generation():
    predictors = LatentPredictors(4, 16, 1, 0.0, context=2, gate=True)
    data = _toy(8)
    with pytest.raises(ValueError, match="presence at t\\+1"):
        predictors.loss(data["z_t"], data["z_next"], torch.ones(8, dtype=torch.bool), 0.0, True,
                        history=data["history"])
    with pytest.raises(ValueError, match="PresenceGates"):
        predictors.step(data["z_t"], 1.0, None, torch.zeros(5, 4), history=data["history"])
