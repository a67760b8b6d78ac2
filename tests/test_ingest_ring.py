"""The shared rings that carry ingest's pieces from the parser workers to the parent (`io/ring.py`): a
worker never writes over a piece the parent still holds, pieces that do not fit travel in the answer,
and a run through small, often full rings writes the same shards as a run without rings."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import REALMIDI
from tunesmith.io import ring, workers
from tunesmith.io.ingest import ingest_folder


def pair(size: int) -> tuple[ring.Ring, ring.RingWriter]:
    """A ring and a writer on it in this process (the worker's side gets its own descriptor)."""
    parent = ring.Ring(size)
    return parent, ring.RingWriter(os.dup(parent.fd), size)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 300), st.integers(0, 4)), min_size=1, max_size=60))
def test_a_worker_never_writes_over_a_piece_the_parent_holds(steps):
    """Pieces of random sizes are put and taken, and released in any order; every held piece keeps its
    bytes, and a put fails only for a piece over a quarter of the ring or while pieces are held."""
    parent, writer = pair(1024)
    held: list[tuple] = []
    for n, (size, which) in enumerate(steps):
        if held and which:  # release one piece (any of them), or all with 4
            for _view, lease, _data in held if which == 4 else [held[which % len(held)]]:
                lease.release()
            held = [] if which == 4 else held[: which % len(held)] + held[which % len(held) + 1 :]
        writer.released = parent.released  # as the parent tells the worker with each batch
        data = bytes([n % 251]) * size
        ref = writer.put([data[: size // 2], data[size // 2 :]], size)
        if ref is None:
            assert size > 1024 // 4 or held
            continue
        view, lease = parent.take(ref)
        held.append((view, lease, data))
        assert all(bytes(old_view) == old_data for old_view, _, old_data in held)
    os.close(parent.fd)


def test_released_follows_the_oldest_piece_held():
    parent, writer = pair(1000)
    first, second = writer.put([b"a" * 100], 100), writer.put([b"b" * 100], 100)
    (_, lease_a), (_, lease_b) = parent.take(first), parent.take(second)
    assert parent.released == 0
    lease_b.release()
    assert parent.released == 0  # the first is still held
    lease_a.release()
    assert parent.released == 200
    assert writer.put([b"c" * 300], 300) is None  # over a quarter of the ring: sent in the answer instead
    os.close(parent.fd)


def shards(out) -> list[tuple]:
    manifest = json.loads((out / "manifest.json").read_text())
    return [(s["name"], s["pieces"], s["files"], s["bin"], s["json"]) for s in manifest["shards"]]


@pytest.mark.parametrize("n_workers", [1, 2])
def test_small_full_rings_write_the_shards_a_run_without_rings_writes(tmp_path, monkeypatch, n_workers):
    src = tmp_path / "src"
    for copy in range(10):  # distinct copies (a byte after the last track): enough pieces to go round
        shutil.copytree(REALMIDI / "miditok_tests", src / str(copy))
        for path in (src / str(copy)).rglob("*.mid"):
            path.write_bytes(path.read_bytes() + bytes([copy]))
    taken = []
    take = ring.Ring.take

    def spying_take(self, ref):
        taken.append((ref.start // self.size, ref.nbytes))
        return take(self, ref)

    monkeypatch.setattr(ring.Ring, "take", spying_take)
    monkeypatch.setattr(ring, "RING_BYTES", 256 << 10)  # pieces over 64 KiB travel in the answer
    workers.close_pools()
    small = ingest_folder(src, tmp_path / "small", workers=n_workers, shard_files=5)
    rings = [w.ring for pool in workers._IDLE.values() for w in pool._workers]
    assert rings and all(r.released == r.end for r in rings)  # nothing held after the run
    workers.close_pools()
    monkeypatch.setattr(workers, "new_ring", lambda n_workers: None)
    plain = ingest_folder(src, tmp_path / "plain", workers=n_workers, shard_files=5)
    workers.close_pools()
    assert small["files"] == plain["files"] and shards(tmp_path / "small") == shards(tmp_path / "plain")
    assert max(lap for lap, _ in taken) >= 1  # the rings went round
    assert small["summary"]["ok"] > len(taken)  # and some pieces did not fit


def test_only_ingest_pools_hold_rings():
    """`read_midi`'s pools map no ring (shared memory per worker is ingest's cost alone); ingest's rings
    shrink as workers are added, 64 MiB in all up to 8 workers."""
    assert [ring.ring_size(n) >> 20 for n in (1, 2, 4, 8, 16)] == [32, 32, 16, 8, 8]
    plain, ringed = workers.borrow_pool(1, workers.Limits()), workers.borrow_pool(1, workers.Limits(), rings=True)
    try:
        assert plain._workers[0].ring is None and ringed._workers[0].ring is not None
    finally:
        workers.return_pool(plain)
        workers.return_pool(ringed)


def test_a_worker_killed_mid_run_leaves_the_pieces_it_sent_intact(tmp_path, monkeypatch):
    """A worker dies (SIGKILL) while the parent still holds pieces from its ring: they are written as
    sent, the dead worker's files in flight are parsed again by its replacement, and the dataset is the
    one a quiet run writes."""

    src = tmp_path / "src"
    for copy in range(3):
        shutil.copytree(REALMIDI / "miditok_tests", src / str(copy))
        for path in (src / str(copy)).rglob("*.mid"):
            path.write_bytes(path.read_bytes() + bytes([copy]))
    quiet = ingest_folder(src, tmp_path / "quiet", workers=2, shard_files=40)
    receive, killed = workers.ParserPool._receive, []

    def killing_receive(self, worker):
        # the worker has just sent pieces (the parent holds them until the one shard is written) and
        # parses a batch of several files: each is retried alone (a file alone in a dying worker's
        # batch would be skipped as what crashed it). Deciding here, not on a later answer, leaves no
        # window in which the worker could finish all its batches first.
        results = receive(self, worker)
        if not killed and results and worker.inflight and len(worker.inflight[0][0]) > 1:
            worker.process.kill()
            killed.append(worker.process.pid)
        return results

    monkeypatch.setattr(workers, "BATCH_FILES", 4)  # many batches, so one is in flight after the first answer
    monkeypatch.setattr(workers.ParserPool, "_receive", killing_receive)
    workers.close_pools()
    shaken = ingest_folder(src, tmp_path / "shaken", workers=2, shard_files=40)
    assert killed and shaken["files"] == quiet["files"]
    assert shards(tmp_path / "shaken") == shards(tmp_path / "quiet")
