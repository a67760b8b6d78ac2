"""The representation contract over the whole registry: the round-trip law on generated and real
scores, golden encodings of a hand-made bar, and save / load through `to_dict`."""

from __future__ import annotations

import contextlib
import functools
import json

import numpy as np
import pytest
import symusic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import real_midi_files
from tunesmith.core.errors import SkipFile
from tunesmith.core.score import make_track, new_score, note_table, scores_have_same_notes, trim
from tunesmith.representations import REPRESENTATIONS, get_representation, representation_from_dict

# Audio representations (pianokeys) hold sound, not notes: their Score round trip goes through a
# synthesizer and a transcription, so it is approximate. They are held to an audio law below (and in
# tests/test_pianokeys.py) instead of the exact symbolic one.
NAMES = sorted(name for name, cls in REPRESENTATIONS.items() if not getattr(cls, "is_audio", False))
AUDIO_NAMES = sorted(set(REPRESENTATIONS) - set(NAMES))
MAX_REAL_NOTES = 1000  # real files are cut after this many notes to keep the suite fast


@functools.cache
def _default(name: str):
    return get_representation(name)  # built once: miditok's tokenizer takes a while to build


def make(name: str, fit_on: list[symusic.Score] = ()):
    """A registered representation, default config, (re)fitted on `fit_on` if it learns a vocabulary."""
    return _default(name).fit(fit_on)


def check_law(rep, score: symusic.Score) -> None:
    """decode(encode(s)) has the notes of canonical(s), and encoding is stable under decode."""
    try:
        array = rep.encode(score)
    except SkipFile:
        with pytest.raises(SkipFile):
            rep.canonical(score)
        return
    decoded = rep.decode(array)
    assert scores_have_same_notes(decoded, rep.canonical(score), rep.note_fields)
    again = rep.encode(decoded)
    assert again.dtype == array.dtype and again.shape == array.shape
    assert np.array_equal(again, array)


# ----- generated scores -----

NOTE = st.tuples(
    st.integers(0, 127),  # pitch
    st.integers(0, 16),  # start, in 1/4 quarters (scaled by a random tick factor below)
    st.integers(0, 8),  # duration, in 1/4 quarters (0: a zero-length note)
    st.integers(1, 127),  # velocity
)


@st.composite
def scores(draw) -> symusic.Score:
    """A small random score: 0-4 tracks (some drums), any pitch, off-grid ticks, tpq 96..960."""
    tpq = draw(st.integers(96, 960))
    score = new_score(tpq=tpq, time_signature=draw(st.sampled_from([(4, 4), (4, 4), (3, 4)])))
    for _ in range(draw(st.integers(0, 4))):
        notes = draw(st.lists(NOTE, max_size=20))
        jitter = draw(st.integers(-tpq // 8, tpq // 8))  # pushes notes off the grid
        pitch = [n[0] for n in notes]
        start = [max(0, n[1] * tpq // 4 + jitter) for n in notes]
        duration = [max(0, n[2] * tpq // 4 + jitter) for n in notes]
        track = make_track(
            pitch, start, duration, [n[3] for n in notes],
            program=draw(st.integers(0, 127)), is_drum=draw(st.booleans()),
            name=draw(st.sampled_from(["", "Melody", "Bass", "Piano right", "Lead Vocal"])),
        )
        score.tracks.append(track)
    return score


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(score=scores())
def test_round_trip_law_on_generated_scores(name, score):
    check_law(make(name, [score]), score)


# ----- real files -----


@functools.cache
def real_score(path: str) -> symusic.Score:
    """A real fixture, cut after MAX_REAL_NOTES notes."""
    score = symusic.Score.from_file(path, format="midi")
    starts = np.sort(note_table(score)["start"])
    if len(starts) > MAX_REAL_NOTES:
        score = trim(score, 0, int(starts[MAX_REAL_NOTES]))
    return score


REAL = [str(p) for p in real_midi_files()]


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_law_on_real_files(name):
    checked = 0
    for path in REAL:
        score = real_score(path)
        check_law(make(name, [score]), score)
        checked += 1
    assert checked == len(REAL) > 50


def test_real_files_are_mostly_encodable_and_nonempty():
    """Guard against a law that holds only because everything was skipped or dropped."""
    for name in NAMES:
        rep = make(name, [real_score(p) for p in REAL])
        sizes = []
        for path in REAL:
            with contextlib.suppress(SkipFile):
                sizes.append(rep.encode(real_score(path)).size)
        assert len(sizes) >= 40, name
        assert sum(s > 0 for s in sizes) >= len(sizes) - 2, name


# ----- golden encodings of one hand-made bar -----
# C4 quarter, E4 eighth, G4 eighth, quarter rest, C5 quarter; 4/4, tpq 480, velocity 100.


def one_bar() -> symusic.Score:
    score = new_score(tpq=480)
    pitch, start, duration = [60, 64, 67, 72], [0, 480, 720, 1440], [480, 240, 240, 480]
    score.tracks.append(make_track(pitch, start, duration, 100, name="Melody"))
    return score


def test_golden_grid():
    ids = make("grid").encode(one_bar())
    vocab = REPRESENTATIONS["grid"].vocab
    assert " ".join(vocab[i] for i in ids) == "60 _ _ _ 64 _ 67 _ r _ _ _ 72 _ _ _"
    assert ids.tolist() == [65, 4, 4, 4, 69, 4, 72, 4, 3, 4, 4, 4, 77, 4, 4, 4]


def test_golden_notes():
    rep = make("notes", [one_bar()])
    assert rep.vocab == ["<pad>", "<bos>", "<eos>", "<unk>", "C4_1.0", "C5_1.0", "E4_0.5", "G4_0.5", "R_1.0"]
    assert [rep.vocab[i] for i in rep.encode(one_bar())] == ["C4_1.0", "E4_0.5", "G4_0.5", "R_1.0", "C5_1.0"]


def test_golden_pianoroll():
    roll = make("pianoroll").encode(one_bar())
    expected = np.zeros((16, 88, 2), bool)
    for pitch, start, steps in [(60, 0, 4), (64, 4, 2), (67, 6, 2), (72, 12, 4)]:
        expected[start, pitch - 21, 0] = True
        expected[start + 1: start + steps, pitch - 21, 1] = True
    assert roll.dtype == bool and np.array_equal(roll, expected)


def test_golden_bars():
    bars = make("bars").encode(one_bar())
    expected = np.zeros((1, 16, 128), np.uint8)
    for pitch, start, steps in [(60, 0, 4), (64, 4, 2), (67, 6, 2), (72, 12, 4)]:
        expected[0, start: start + steps, pitch] = 1
    assert bars.dtype == np.uint8 and np.array_equal(bars, expected)


def test_golden_multitrack():
    roll = make("multitrack").encode(one_bar())
    expected = np.zeros((5, 16, 128), np.uint8)
    for pitch, start, steps in [(60, 0, 4), (64, 4, 2), (67, 6, 2), (72, 12, 4)]:
        expected[0, start: start + steps, pitch] = 100  # group 0: piano (program 0)
    assert roll.dtype == np.uint8 and np.array_equal(roll, expected)


def test_golden_events_remi_and_tsd():
    remi = make("events")
    tokens = [remi.vocab[i] for i in remi.encode(one_bar())]
    note = lambda pitch, dur: ["Program_0", f"Pitch_{pitch}", "Velocity_99", f"Duration_{dur}"]  # noqa: E731
    assert tokens == [
        "Bar_None", "Position_0", *note(60, "1.0.8"), "Position_8", *note(64, "0.4.8"),
        "Position_12", *note(67, "0.4.8"), "Position_24", *note(72, "1.0.8"),
    ]
    tsd = get_representation("events", tokenizer="TSD", use_programs=False, velocities=0)
    tokens = [tsd.vocab[i] for i in tsd.encode(one_bar())]
    assert tokens == [
        "Pitch_60", "Duration_1.0.8", "TimeShift_1.0.8", "Pitch_64", "Duration_0.4.8", "TimeShift_0.4.8",
        "Pitch_67", "Duration_0.4.8", "TimeShift_1.4.8", "Pitch_72", "Duration_1.0.8",
    ]


# ----- save / load -----


@pytest.mark.parametrize("name", NAMES)
def test_to_dict_round_trip_gives_identical_encodings(name):
    scores = [real_score(p) for p in REAL[:6]]
    rep = make(name, scores)
    data = json.loads(json.dumps(rep.to_dict()))  # must survive JSON, as in a checkpoint
    again = representation_from_dict(data)
    assert type(again) is type(rep) and again.config == rep.config
    assert getattr(again, "vocab", None) == getattr(rep, "vocab", None)
    for score in scores:
        try:
            assert np.array_equal(again.encode(score), rep.encode(score))
        except SkipFile:
            continue


@pytest.mark.parametrize("name", AUDIO_NAMES)
def test_audio_representations_transcribe_what_they_hear(name):
    """The audio law: decode(encode(s)) finds every note of canonical(s) (pitch, onset within 50 ms)
    and nothing else; encoding is stable in shape; the config survives to_dict."""
    from tunesmith.representations.pianokeys_transcribe import match_notes

    rep = make(name)
    array = rep.encode(one_bar())
    assert array.dtype == np.float32 and array.ndim == 3 and array.min() >= 0 and array.max() <= 1
    scores = match_notes(rep.canonical(one_bar()), rep.decode(array))
    assert scores["reference"] == 4 and scores["f1"] == 1.0, scores
    again = representation_from_dict(json.loads(json.dumps(rep.to_dict())))
    assert again.config == rep.config and np.array_equal(again.encode(one_bar()), array)
    assert rep.encode(rep.decode(array)).shape[:2] == array.shape[:2]


def test_token_representations_expose_the_token_contract():
    for name in NAMES:
        rep = make(name, [one_bar()])
        if not rep.is_tokens:
            continue
        assert rep.vocab_size == len(rep.vocab) > 3
        assert len({rep.pad_id, rep.bos_id, rep.eos_id}) == 3
        ids = rep.encode(one_bar())
        assert ids.dtype == np.int64 and ids.ndim == 1 and ids.size
        assert not np.isin(ids, [rep.pad_id, rep.bos_id, rep.eos_id]).any()  # encode adds no specials
        framed = np.r_[rep.bos_id, ids, rep.eos_id, rep.pad_id]
        assert scores_have_same_notes(rep.decode(framed), rep.decode(ids), rep.note_fields)
