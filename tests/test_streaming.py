"""Streaming windows over an ingest dataset: the same items, in the same order, as the in-memory path
(tokens, piano-roll frames, multitrack frames with time on axis 1), read lazily; a run trains to the same
losses; what streaming cannot serve is one sentence."""

from __future__ import annotations

import pytest
import torch

from conftest import REALMIDI
from tunesmith.core.errors import UserError
from tunesmith.data.build import prepare_data
from tunesmith.data.streaming import StreamingWindows
from tunesmith.io.ingest import ingest_folder
from tunesmith.resources import shipped_recipe
from tunesmith.training.config import load_config
from tunesmith.training.loop import train

MELODIES = REALMIDI / "sara_munafo_gan_nndl"
SONGS = REALMIDI / "miditok_tests" / "MIDIs_multitrack"


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    root = tmp_path_factory.mktemp("streaming")
    for name, folder in (("melodies", MELODIES), ("songs", SONGS)):
        ingest_folder(folder, root / name, workers=0)
    return root


@pytest.fixture(scope="module")
def dataset(ingested):
    return ingested / "melodies"


def _config(dataset, *overrides: str, recipe: str = "debug/lstm"):
    return load_config(shipped_recipe(recipe), [f"data.source={dataset}", "data.transpose=1", *overrides])


@pytest.mark.parametrize(("recipe", "folder", "kind"), [("debug/lstm", "melodies", "tokens"),
                                                        ("debug/conv-vae", "melodies", "frames"),
                                                        ("debug/band", "songs", "frames")])
def test_streamed_items_equal_the_in_memory_ones(ingested, recipe, folder, kind):
    memory = prepare_data(_config(ingested / folder, recipe=recipe).data, kind)
    streamed = prepare_data(_config(ingested / folder, "data.streaming=true", recipe=recipe).data, kind)
    assert isinstance(streamed.train, StreamingWindows)
    assert streamed.representation.to_dict() == memory.representation.to_dict()  # fitted on the same copies
    for split in ("train", "valid"):
        a, b = getattr(memory, split), getattr(streamed, split)
        assert len(a) == len(b) > 0
        sample = range(0, len(a), max(1, len(a) // 60))  # a long song is read and encoded for each item
        assert all(a[i].keys() == b[i].keys() and all(torch.equal(a[i][k], b[i][k]) for k in a[i])
                   for i in sample)
    assert streamed.provenance["pieces"] == memory.provenance["pieces"]
    assert streamed.provenance["train_ids_sha256"] == memory.provenance["train_ids_sha256"]
    resident = sum(getattr(streamed.train, k).nbytes for k in ("rows", "shift_counts", "starts", "bounds"))
    assert resident < 40 * len(memory.train)  # bytes per window, not its encoding


def test_a_streaming_run_with_workers_trains_as_the_in_memory_run(dataset, tmp_path, one_thread):
    overrides = ["trainer.max_epochs=2", "trainer.log_every=1"]
    memory = train(_config(dataset, *overrides), tmp_path / "memory")
    streamed = train(_config(dataset, *overrides, "data.streaming=true", "trainer.workers=2"), tmp_path / "stream")
    assert (memory / "metrics.csv").read_text() == (streamed / "metrics.csv").read_text()


def test_streaming_needs_an_ingest_dataset_and_a_token_model(dataset):
    with pytest.raises(UserError, match="data.streaming reads an ingest dataset folder"):
        prepare_data(load_config(shipped_recipe("debug/lstm"), ["data.streaming=true"]).data, "tokens")
    with pytest.raises(UserError, match="data.streaming serves token and frame models, not 'bars'"):
        prepare_data(_config(dataset, "data.streaming=true").data, "bars")


@pytest.mark.parametrize("max_shift", [0, 1, 5, 6, 12])
def test_shift_at_lists_the_transpositions_shifts_of_makes(max_shift):
    from symusic import Note, Score, Track

    from tunesmith.data.streaming import shift_at, shifts_of

    for low, high in [(0, 0), (0, 127), (127, 127), (3, 120), (60, 72), (1, 126), (10, 125), (5, 5)]:
        score, track = Score(480), Track("t", 0, False)
        track.notes.extend([Note(0, 10, low, 64), Note(10, 10, high, 64)])
        score.tracks.append(track)
        shifts = shifts_of(score, max_shift)
        assert [shift_at(min(shifts), k) for k in range(len(shifts))] == shifts, (low, high)
