"""Streamed `grid` items are encoded straight from the ingest cache's note arrays (no Score per item), and
only for the steps their window holds: every item must equal the one the Score path (read, transpose,
encode the whole piece, cut) gives, on multitrack songs with drums and long piano pieces, at every
transposition; key normalisation keeps the Score path."""

from __future__ import annotations

import pytest
import torch

from conftest import REALMIDI
from tunesmith.data.build import prepare_data
from tunesmith.data.config import DataConfig
from tunesmith.io.ingest import ingest_folder


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    out = tmp_path_factory.mktemp("fast") / "songs"
    ingest_folder(REALMIDI / "miditok_tests", out, workers=2)  # Maestro pieces: thousands of steps
    return out


@pytest.mark.parametrize("normalize_key", [False, True])
def test_items_from_note_arrays_equal_the_score_path(songs, normalize_key):
    config = DataConfig(source=str(songs), representation="grid", window=32, streaming=True, transpose=3,
                        normalize_key=normalize_key)
    data = prepare_data(config, "tokens")
    train = data.train
    assert train.from_notes is not normalize_key
    items = range(0, len(train), max(1, len(train) // (20 if normalize_key else 400)))
    fast = [train[i]["tokens"] for i in items]
    train.from_notes = False
    slow = [train[i]["tokens"] for i in items]
    assert len(set(train.shift_counts.tolist())) > 1 or max(train.shift_counts) > 1  # transposed copies seen
    assert all(torch.equal(a, b) for a, b in zip(fast, slow, strict=True))
