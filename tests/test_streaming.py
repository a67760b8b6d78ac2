"""Streaming token windows over an ingest dataset: the same items, in the same order, as the in-memory
path, read lazily; a run trains to the same losses; what streaming cannot serve is one sentence."""

from __future__ import annotations

import pytest
import torch

from conftest import REALMIDI
from tunesmith.core.errors import UserError
from tunesmith.data.build import prepare_data
from tunesmith.data.streaming import StreamingTokenWindows
from tunesmith.io.ingest import ingest_folder
from tunesmith.resources import shipped_recipe
from tunesmith.training.config import load_config
from tunesmith.training.loop import train

MELODIES = REALMIDI / "sara_munafo_gan_nndl"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("streaming") / "melodies"
    ingest_folder(MELODIES, out, workers=0)
    return out


def _config(dataset, *overrides: str):
    return load_config(shipped_recipe("debug/lstm"), [f"data.source={dataset}", "data.transpose=1", *overrides])


def test_streamed_items_equal_the_in_memory_ones(dataset):
    memory = prepare_data(_config(dataset).data, "tokens")
    streamed = prepare_data(_config(dataset, "data.streaming=true").data, "tokens")
    assert isinstance(streamed.train, StreamingTokenWindows)
    assert streamed.representation.to_dict() == memory.representation.to_dict()  # fitted on the same copies
    for split in ("train", "valid"):
        a, b = getattr(memory, split), getattr(streamed, split)
        assert len(a) == len(b) > 0
        assert all(torch.equal(a[i]["tokens"], b[i]["tokens"]) for i in range(len(a)))
    assert streamed.provenance["pieces"] == memory.provenance["pieces"]
    assert streamed.provenance["train_ids_sha256"] == memory.provenance["train_ids_sha256"]
    assert streamed.train.rows.nbytes + streamed.train.windows.nbytes < 50 * len(memory.train)  # bytes, not pieces


def test_a_streaming_run_with_workers_trains_as_the_in_memory_run(dataset, tmp_path, one_thread):
    overrides = ["trainer.max_epochs=2", "trainer.log_every=1"]
    memory = train(_config(dataset, *overrides), tmp_path / "memory")
    streamed = train(_config(dataset, *overrides, "data.streaming=true", "trainer.workers=2"), tmp_path / "stream")
    assert (memory / "metrics.csv").read_text() == (streamed / "metrics.csv").read_text()


def test_streaming_needs_an_ingest_dataset_and_a_token_model(dataset):
    with pytest.raises(UserError, match="data.streaming reads an ingest dataset folder"):
        prepare_data(load_config(shipped_recipe("debug/lstm"), ["data.streaming=true"]).data, "tokens")
    with pytest.raises(UserError, match="data.streaming serves token models, not 'frames'"):
        prepare_data(_config(dataset, "data.streaming=true").data, "frames")
