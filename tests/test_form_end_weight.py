"""Up-weighted piece endings in the loss (issue 11, item 2; data/end_windows.end_weights,
models/layers.masked_cross_entropy): on real chorales with bar countdown tokens, the targets from the
bar line that opens a piece's last bars to its end token carry the asked weight, the LSTM's loss is the
weighted mean, and without weights everything is as before."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tunesmith.data.datasets import TokenWindows
from tunesmith.data.end_windows import end_weights
from tunesmith.models.layers import masked_cross_entropy
from tunesmith.models.rnn import RNNConfig, RNNLanguageModel


@pytest.fixture(scope="module")
def chorales(countdown_chorales):
    return countdown_chorales


def test_end_weights_start_at_the_bar_line_of_the_last_bars(chorales):
    rep, pieces = chorales
    framed = np.concatenate([[rep.bos_id], pieces[0], [rep.eos_id]])
    first = rep.countdown.first_id
    for bars in (1, 2):
        w = end_weights(framed, rep.countdown.is_bar, bars, 4.0)
        start = int(np.flatnonzero(framed == first + bars - 1)[-1])  # Bar_{bars-1} opens the last `bars` bars
        assert (w[start:] == 4.0).all() and (w[:start] == 1.0).all() and start > len(framed) // 2
    no_bars = np.array([rep.bos_id, rep.eos_id])
    assert (end_weights(no_bars, rep.countdown.is_bar, 1, 4.0) == 1).all()


def test_weighted_windows_carry_the_target_weights_and_the_same_tokens(chorales):
    rep, pieces = chorales
    plain = TokenWindows(pieces, 256, 128, rep.bos_id, rep.eos_id, rep.pad_id, end_share=0.5)
    heavy = TokenWindows(pieces, 256, 128, rep.bos_id, rep.eos_id, rep.pad_id, end_share=0.5, end_weight=3.0,
                         is_bar=rep.countdown.is_bar, end_bars=1)
    assert len(plain) == len(heavy) and "weights" not in plain[0]
    weighted_items = 0
    for i in range(len(heavy)):
        item = heavy[i]
        assert torch.equal(item["tokens"], plain[i]["tokens"]) and item["weights"].shape == (256,)
        targets, w = item["tokens"][1:], item["weights"]
        if (targets == rep.eos_id).any():  # a window holding the end: Bar_0 .. EOS weigh 3, the rest 1
            weighted_items += 1
            start = int(torch.nonzero(targets == rep.countdown.first_id)[-1])
            end = int(torch.nonzero(targets == rep.eos_id)[0])
            assert (w[start : end + 1] == 3).all() and (w[:start] == 1).all()
        else:
            assert (w[targets != rep.pad_id] == 1).all() or (targets == rep.countdown.first_id).any()
    assert weighted_items >= len(heavy) // 2
    with pytest.raises(ValueError, match="is_bar"):
        TokenWindows(pieces, 256, 128, rep.bos_id, rep.eos_id, rep.pad_id, end_weight=2.0)


def test_masked_cross_entropy_weights():
    torch.manual_seed(0)
    logits, targets = torch.randn(2, 5, 7), torch.randint(1, 7, (2, 5))
    targets[1, 3:] = 0  # padding
    plain, accuracy = masked_cross_entropy(logits, targets, 0)
    assert torch.equal(plain, F.cross_entropy(logits.reshape(-1, 7), targets.reshape(-1), ignore_index=0))
    ones, _ = masked_cross_entropy(logits, targets, 0, torch.ones(2, 5))
    assert ones.item() == pytest.approx(plain.item(), rel=1e-6)
    w = torch.rand(2, 5) + 0.5
    weighted, weighted_accuracy = masked_cross_entropy(logits, targets, 0, w)
    ce = F.cross_entropy(logits.reshape(-1, 7), targets.reshape(-1), reduction="none").reshape(2, 5)
    mask = targets != 0
    assert weighted.item() == pytest.approx(((ce * w)[mask].sum() / w[mask].sum()).item(), rel=1e-6)
    assert weighted.item() != pytest.approx(plain.item()) and torch.equal(weighted_accuracy, accuracy)


def test_the_lstm_loss_reads_the_batch_weights():
    torch.manual_seed(0)
    model = RNNLanguageModel(RNNConfig(vocab_size=11, pad_id=0, embed_dim=8, hidden_size=16, num_layers=1)).eval()
    tokens = torch.randint(1, 11, (3, 9))
    weights = torch.ones(3, 8)
    weights[:, -3:] = 5.0
    plain = model.loss({"tokens": tokens})["loss"]
    assert model.loss({"tokens": tokens, "weights": torch.ones(3, 8)})["loss"].item() == pytest.approx(plain.item())
    heavy = model.loss({"tokens": tokens, "weights": weights})["loss"]
    logits = model(tokens[:, :-1])
    ce = F.cross_entropy(logits.reshape(-1, 11), tokens[:, 1:].reshape(-1), reduction="none").reshape(3, 8)
    assert heavy.item() == pytest.approx(((ce * weights).sum() / weights.sum()).item(), rel=1e-5)
