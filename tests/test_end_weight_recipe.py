"""The recipe keys `data.end_weight` / `data.end_bars` (issue 11, item 2): training windows of a countdown
representation carry per-target loss weights, validation windows none; a representation without
countdown tokens, streaming, or a family whose loss reads no weights is one sentence, before training."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from conftest import BACH40, LSTM_BACH_EVENTS
from tunesmith.core.errors import UserError
from tunesmith.data.build import prepare_data
from tunesmith.data.config import DataConfig

DEBUG = Path(__file__).parents[1] / "configs" / "debug"


def config(**kw) -> DataConfig:
    return DataConfig(source=str(BACH40), representation="events", window=128, limit=10,
                      representation_config={**LSTM_BACH_EVENTS, "countdown": 8}, **kw)


def test_training_windows_carry_end_weights_and_validation_windows_do_not():
    data = prepare_data(config(end_weight=4.0, end_bars=2), "tokens")
    train = [data.train[i] for i in range(len(data.train))]
    weights = torch.cat([item["weights"] for item in train])
    assert set(weights.unique().tolist()) == {1.0, 4.0}
    eos = data.representation.eos_id
    for item in train:  # every end token is a weighted target (the targets are tokens[1:])
        ends = (item["tokens"][1:] == eos).nonzero().flatten()
        assert all(item["weights"][k] == 4.0 for k in ends.tolist())
    assert "weights" not in data.valid[0]
    assert "weights" not in prepare_data(config(), "tokens").train[0]  # off by default


def test_end_weight_needs_countdown_tokens_and_in_memory_windows():
    plain = DataConfig(source=str(BACH40), representation="events", window=128, limit=10,
                       representation_config=LSTM_BACH_EVENTS, end_weight=4.0)
    with pytest.raises(UserError, match="countdown"):
        prepare_data(plain, "tokens")
    with pytest.raises(ValidationError, match="streaming"):
        config(end_weight=4.0, streaming=True)


def test_a_family_whose_loss_reads_no_weights_is_refused(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tunesmith", "train", str(DEBUG / "transformer.yaml"),
                             "--out", str(tmp_path / "run"), "--set", "data.end_weight=4"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "does not read weights" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()
