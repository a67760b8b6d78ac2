"""Dataset format 3 stores track, program and is_drum once per track, not per note: the note table a
reader gets is the same as from format 2, which stays readable, and an ingest adding to a format-2
folder leaves both kinds of shard readable."""

from __future__ import annotations

import json
import shutil

import numpy as np

from conftest import real_midi_files
from tunesmith.io import cache, cache_writer
from tunesmith.io.cache import NOTE_DTYPES, open_dataset
from tunesmith.io.ingest import ingest_folder


def format_2_pack(pieces):
    """The writer's packing as format 2 had it: the per-note track, program and is_drum arrays added
    after the piece arrays, derived from the track table."""
    layout, arrays = _pack_3(pieces)
    if not layout:
        return layout, arrays
    names = list(layout)
    table = dict(zip(names, arrays, strict=True))
    counts = np.asarray(table["track_notes"])
    first = np.repeat(table["piece_tracks"][:-1], np.diff(table["piece_tracks"]))
    extra = {"track": np.repeat((np.arange(len(counts)) - first).astype("<i2"), counts),
             "program": np.repeat(table["track_program"], counts),
             "is_drum": np.repeat(table["track_is_drum"], counts)}
    offset = max(off + -(-length * np.dtype(dt).itemsize // cache.ALIGN) * cache.ALIGN
                 for dt, length, off in layout.values())
    for name, array in extra.items():
        layout[name] = (array.dtype.str, len(array), offset)
        offset += -(-array.nbytes // cache.ALIGN) * cache.ALIGN
    return layout, [*arrays, *extra.values()]


_pack_3 = cache_writer._pack


def note_tables(folder) -> list[dict]:
    data = open_dataset(folder)
    return [{name: np.asarray(data.notes(i)[name]) for name in NOTE_DTYPES} for i in range(len(data))]


def test_format_3_reads_the_note_tables_format_2_stored(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    files = [p for p in real_midi_files() if "corrupt" not in str(p)][:6]
    for path in files[:4]:
        shutil.copy2(path, src / path.name)
    ingest_folder(src, tmp_path / "new", workers=1, shard_files=2)
    with monkeypatch.context() as patch:  # the same files written as format 2 did
        patch.setattr(cache_writer, "_pack", format_2_pack)
        patch.setattr(cache_writer, "VERSION", 2)
        ingest_folder(src, tmp_path / "old", workers=1, shard_files=2)
    layouts = [json.loads(p.read_text())["layout"] for p in sorted((tmp_path / "old" / "shards").glob("*.json"))]
    assert all("program" in layout for layout in layouts)
    assert json.loads((tmp_path / "old" / "manifest.json").read_text())["version"] == 2
    new, old = note_tables(tmp_path / "new"), note_tables(tmp_path / "old")
    assert len(new) == len(old) == 4
    for a, b in zip(new, old, strict=True):
        assert all(a[name].dtype == b[name].dtype and np.array_equal(a[name], b[name]) for name in NOTE_DTYPES)
    scores = [open_dataset(tmp_path / "new").score(i) for i in range(4)]
    for table, score in zip(new, scores, strict=True):  # program and drums as the tracks say
        expected = np.concatenate([[t.program] * len(t.notes) for t in score.tracks])
        assert np.array_equal(table["program"], expected)

    for path in files[4:]:  # format-2 folder resumed by this version: both kinds of shard read back
        shutil.copy2(path, src / path.name)
    report = ingest_folder(src, tmp_path / "old", workers=1, shard_files=2)
    assert report["reused"] == 4
    assert json.loads((tmp_path / "old" / "manifest.json").read_text())["version"] == 3
    fresh = tmp_path / "fresh"
    ingest_folder(src, fresh, workers=1, shard_files=2)
    for a, b in zip(note_tables(fresh), note_tables(tmp_path / "old"), strict=True):
        assert all(np.array_equal(a[name], b[name]) for name in NOTE_DTYPES)
