"""Frame windows: along time, padded with a mask, silent windows left out."""

from __future__ import annotations

import numpy as np

from tunesmith.data.datasets import FrameWindows


def test_silent_windows_are_left_out_and_short_ones_padded():
    roll = np.zeros((40, 88, 2), dtype=bool)
    roll[3, 39, 0] = roll[35, 40, 0] = True  # sound in the first and the last window only
    windows = FrameWindows([roll], window=10, stride=10)
    offsets = [offset for _, offset in windows.index]
    assert offsets == [0, 30]
    item = windows[0]
    assert item["frames"].shape == (10, 88, 2) and bool(item["mask"].all())
    assert FrameWindows([roll[:5]], window=10, stride=10)[0]["mask"].tolist() == [True] * 5 + [False] * 5
