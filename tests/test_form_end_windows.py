"""End-aligned training windows (issue 11, item 2; data/end_windows.py): on real chorales encoded with
bar countdown tokens, the asked share of `TokenWindows` items holds a piece's end token and its `Bar_0`,
the rest is the plain index, and nothing changes when the share is off."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tunesmith.data.datasets import TokenWindows
from tunesmith.data.end_windows import ENV, end_offsets, env_share, with_end_windows
from tunesmith.io.midi import read_midi
from tunesmith.representations import get_representation

BACH40 = Path(__file__).parent / "fixtures" / "bach40"
LSTM_BACH = {"steps_per_quarter": 4, "max_duration_quarters": 4, "velocities": 0, "use_programs": False}


@pytest.fixture(scope="module")
def chorales():
    rep = get_representation("events", **LSTM_BACH, countdown=8)
    return rep, [rep.encode(read_midi(path)) for path in sorted(BACH40.glob("*.mid"))[:12]]


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


def test_off_by_default_and_the_environment_switch(chorales, monkeypatch):
    rep, pieces = chorales
    monkeypatch.delenv(ENV, raising=False)
    default = TokenWindows(pieces, 256, 128, rep.bos_id, rep.eos_id, rep.pad_id)
    assert default.index == _windows(chorales, 0.0).index and env_share() == 0.0
    monkeypatch.setenv(ENV, "0.5")
    switched = TokenWindows(pieces, 256, 128, rep.bos_id, rep.eos_id, rep.pad_id)
    assert switched.index == _windows(chorales, 0.5).index != default.index
    for bad in ("1", "-0.1", "half"):
        monkeypatch.setenv(ENV, bad)
        with pytest.raises(SystemExit) as stop:
            env_share()
        assert stop.value.code == 2


def test_end_offsets_keep_half_a_window_and_short_pieces_stay_whole():
    assert end_offsets(100, 257) == [0]
    offsets = end_offsets(600, 257)
    assert offsets[0] == 600 - 257 and len(offsets) == 4 and all(600 - o >= 257 // 2 for o in offsets)
    assert with_end_windows([(0, 0)], [100], 257, 0.5) == [(0, 0)]  # already all ends: nothing added
    with pytest.raises(ValueError):
        with_end_windows([(0, 0)], [100], 257, 1.0)
