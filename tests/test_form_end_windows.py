"""End-aligned training windows (issue 11, item 2; data/end_windows.py): on real chorales encoded with
bar countdown tokens, the asked share of `TokenWindows` items holds a piece's end token and its `Bar_0`,
the rest is the plain index, and nothing changes when the share is off."""

from __future__ import annotations

import numpy as np
import pytest

from tunesmith.data.config import DataConfig
from tunesmith.data.datasets import TokenWindows
from tunesmith.data.end_windows import end_offsets, holds_end, with_end_windows


@pytest.fixture(scope="module")
def chorales(countdown_chorales):
    return countdown_chorales


def _windows(chorales, share):
    rep, pieces = chorales
    return TokenWindows(pieces, 256, 128, rep.bos_id, rep.eos_id, rep.pad_id, end_share=share)


def _holds(rep, tokens: np.ndarray, token: str) -> bool:
    return rep.vocab.index(token) in tokens.tolist()


@pytest.mark.parametrize("share", [0.3, 0.5, 0.8])
def test_the_asked_share_of_windows_holds_the_piece_end_and_its_last_bar(chorales, share):
    rep, _ = chorales
    plain, ends = _windows(chorales, 0.0), _windows(chorales, share)
    assert ends.index[: len(plain.index)] == plain.index  # the plain windows first, unchanged
    items = [ends[i]["tokens"].numpy() for i in range(len(ends))]
    with_eos = np.array([rep.eos_id in t.tolist() for t in items])
    base_share = with_eos[: len(plain.index)].mean()
    assert base_share < 0.3  # 12 chorales of ~600 tokens, 256-token windows: about one in four holds the end
    assert abs(with_eos.mean() - share) < 0.02  # the asked share, up to rounding
    added = items[len(plain.index):]
    assert all(rep.eos_id in t.tolist() and _holds(rep, t, "Bar_0") for t in added)
    # the end falls at different places of the added windows, and every piece gets its ending
    where = {int(np.flatnonzero(t == rep.eos_id)[0]) for t in added}
    assert max(where) == 256 and len(where) == min(4, 1 + (len(added) - 1) // 12)  # a variant per round
    assert {p for p, _ in ends.index[len(plain.index):]} == set(range(12))
    assert all((t[int(np.flatnonzero(t == rep.eos_id)[0]) + 1:] == rep.pad_id).all() for t in added)


def test_off_by_default_and_a_recipe_key_for_training_windows(chorales):
    rep, pieces = chorales
    default = TokenWindows(pieces, 256, 128, rep.bos_id, rep.eos_id, rep.pad_id)
    assert default.index == _windows(chorales, 0.0).index != _windows(chorales, 0.5).index
    assert DataConfig(end_windows=0.5).end_windows == 0.5
    for bad in ({"end_windows": 1.0}, {"end_windows": -0.1}, {"end_windows": 0.5, "streaming": True}):
        with pytest.raises(ValueError):
            DataConfig(**bad)


def test_end_windows_reach_the_training_split_only(tmp_path):
    from tunesmith.data.build import prepare_data

    config = DataConfig(source="bach", representation="events", window=256, limit=40, end_windows=0.5,
                        representation_config={"tokenizer": "REMI", "countdown": 8})
    data = prepare_data(config, "tokens")
    ends = [holds_end(len(data.train.pieces[p]), o, data.train.window) for p, o in data.train.index]
    plain = [holds_end(len(data.valid.pieces[p]), o, data.valid.window) for p, o in data.valid.index]
    assert abs(np.mean(ends) - 0.5) < 0.03 and np.mean(plain) < 0.4


def test_end_offsets_keep_half_a_window_and_short_pieces_stay_whole():
    assert end_offsets(100, 257) == [0]
    offsets = end_offsets(600, 257)
    assert offsets[0] == 600 - 257 and len(offsets) == 4 and all(600 - o >= 257 // 2 for o in offsets)
    assert with_end_windows([(0, 0)], [100], 257, 0.5) == [(0, 0)]  # already all ends: nothing added
    with pytest.raises(ValueError):
        with_end_windows([(0, 0)], [100], 257, 1.0)
