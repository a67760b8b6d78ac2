"""Behaviour of single representations: chords, melody choice, vocabularies, repairs, windows, errors."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest

from tunesmith.core.constants import PITCH_NAMES
from tunesmith.core.errors import SkipFile, UserError
from tunesmith.core.score import make_track, new_score, note_table
from tunesmith.representations import get_representation, representation_from_dict
from tunesmith.representations._melody import melody_track
from tunesmith.representations.bars import chord_name, chord_vector, chord_vectors
from tunesmith.representations.multitrack import windows
from tunesmith.representations.notes import normal_order


def notes_of(score):
    t = note_table(score)
    return sorted(zip(t["pitch"].tolist(), t["start"].tolist(), t["duration"].tolist(), strict=True))


# ----- bars: chord names, chord estimation, melody choice, meter -----


def test_chord_vector_reads_common_names():
    def expect(root, minor):
        v = np.zeros(13, np.float32)
        v[root], v[12] = 1, minor
        return v

    cases = {"C": (0, 0), "Am": (9, 1), "F#m": (6, 1), "Bb": (10, 0), "Ebmaj7": (3, 0), "G7": (7, 0),
             "C/E": (0, 0), "Dmin": (2, 1), "B♭m7": (10, 1), "c": (0, 0), "Bdim": (11, 1)}
    for name, (root, minor) in cases.items():
        assert np.array_equal(chord_vector(name), expect(root, minor)), name
    assert not chord_vector("N").any() and not chord_vector("N.C.").any()
    assert chord_vectors("C G Am F").shape == (4, 13)
    assert [chord_name(v) for v in chord_vectors("C, G | Am F#m")] == ["C", "G", "Am", "F#m"]
    for name in ["H", "Cxyz", "", "7"]:
        with pytest.raises(UserError):
            chord_vector(name)


def test_chord_name_inverts_chord_vector_for_all_triads():
    for root, quality in itertools.product(PITCH_NAMES, ["", "m"]):
        assert chord_name(chord_vector(root + quality)) == root + quality


def two_bar_song():
    """Bar 1: C major accompaniment, bar 2: A minor (plus a passing D); melody on top."""
    score = new_score(tpq=480)
    score.tracks.append(make_track([72, 74, 76, 69], [0, 960, 1920, 2880], [960, 960, 960, 960], name="Lead"))
    score.tracks.append(make_track([48, 52, 55, 57, 60, 64, 62], [0, 0, 0, 1920, 1920, 1920, 3360],
                                   [1920, 1920, 1920, 1920, 1920, 1920, 240], program=0, name="Piano"))
    score.tracks.append(make_track([36] * 8, range(0, 3840, 480), [60] * 8, is_drum=True, name="Drums"))
    return score


def test_chords_are_estimated_per_bar_from_the_accompaniment():
    rep = get_representation("bars")
    song = two_bar_song()
    assert melody_track(song) == 0
    assert rep.encode(song).shape == (2, 16, 128)
    chords = rep.chords(song)
    assert chords.shape == (2, 13) and chords.dtype == np.float32
    assert [chord_name(c) for c in chords] == ["C", "Am"]


def test_melody_track_by_name_else_highest_busy_track():
    score = two_bar_song()
    score.tracks[0].name = "Strings"
    score.tracks[1].name = "Vocals"
    assert melody_track(score) == 1
    score.tracks[1].name = "Backing vocals"  # excluded word: falls back to the highest busy track
    assert melody_track(score) == 0
    assert melody_track(new_score()) is None


def test_bars_keep_one_pitch_per_step_and_join_repeats():
    score = new_score(tpq=480)
    # A chord (the top voice is kept) and a repeated note (joined: one-hot steps have no onsets).
    score.tracks.append(make_track([60, 64, 67, 67], [0, 0, 0, 480], [480, 480, 480, 480]))
    decoded = get_representation("bars").decode(get_representation("bars").encode(score))
    assert notes_of(decoded) == [(67, 0, 960)]


def test_bars_skip_other_meters_unless_told_to_ignore_them():
    score = new_score(tpq=480, time_signature=(3, 4))
    score.tracks.append(make_track([60], [0], [480]))
    with pytest.raises(SkipFile, match="3/4"):
        get_representation("bars").encode(score)
    assert get_representation("bars", other_meters="ignore").encode(score).shape == (1, 16, 128)
    with pytest.raises(UserError):
        get_representation("bars", other_meters="sometimes")


def test_bars_decode_takes_the_argmax_of_scores():
    scores = np.zeros((1, 16, 128), np.float32)
    scores[0, :8, 60] = 0.9
    scores[0, :8, 62] = 0.3
    assert notes_of(get_representation("bars").decode(scores)) == [(60, 0, 960)]


# ----- grid -----


def test_grid_takes_the_skyline_and_restrikes():
    score = new_score(tpq=480)
    score.tracks.append(make_track([60, 72, 60], [0, 240, 480], [960, 120, 480]))
    score.tracks.append(make_track([40], [0], [480], is_drum=True))  # drums are not melody
    rep = get_representation("grid")
    # 60 is cut where it is struck again (step 4); 72 covers step 2, then 60 shows again (a new note).
    assert " ".join(rep.vocab[i] for i in rep.encode(score)) == "60 _ 72 60 60 _ _ _"


def test_grid_decode_skips_specials_and_holds_leading_silence():
    rep = get_representation("grid")
    ids = np.array([rep.bos_id, 4, 4, 65, 4, 3, 65, rep.eos_id, rep.pad_id])  # _ _ 60 _ r 60
    assert notes_of(rep.decode(ids)) == [(60, 240, 240), (60, 600, 120)]
    with pytest.raises(UserError):
        rep.decode(np.array([133]))


# ----- notes -----


def test_normal_order_matches_music21():
    from music21 import chord

    rng = np.random.default_rng(0)
    sets = [sorted(rng.choice(12, size=k, replace=False).tolist()) for k in (2, 3, 4, 5, 6) for _ in range(8)]
    sets += [[0, 4, 8], [0, 3, 6, 9], [2, 7, 11], [0, 1, 6, 7]]  # symmetric and tie-breaking cases
    for pcs in sets:
        assert normal_order(pcs) == chord.Chord(pcs).normalOrder, pcs


def test_notes_chords_get_close_voicing_from_octave_4():
    score = new_score(tpq=480)
    score.tracks.append(make_track([43, 59, 62, 74, 50], [0, 0, 0, 0, 960], [960, 960, 960, 960, 480]))
    rep = get_representation("notes").fit([score])
    assert [rep.vocab[i] for i in rep.encode(score)] == ["7.11.2_2.0", "D3_1.0"]
    expected = [(50, 960, 480), (67, 0, 960), (71, 0, 960), (74, 0, 960)]  # G4 B4 D5, then D3
    assert notes_of(rep.decode(rep.encode(score))) == expected


def test_notes_cut_at_next_onset_round_down_and_fill_rests():
    score = new_score(tpq=480)
    # A 5-step note then a note 5 steps later: 1.25 quarters is not in the grid -> 1.0 + R_0.25.
    score.tracks.append(make_track([60, 62], [0, 600], [1200, 480]))
    rep = get_representation("notes").fit([score])
    assert [rep.vocab[i] for i in rep.encode(score)] == ["C4_1.0", "R_0.25", "D4_1.0"]


def test_notes_unknown_tokens_map_to_nearest_duration_or_unk():
    train = new_score(tpq=480)
    train.tracks.append(make_track([60, 62], [0, 480], [480, 960]))  # C4_1.0 D4_2.0
    rep = get_representation("notes").fit([train])
    other = new_score(tpq=480)
    other.tracks.append(make_track([60, 70], [0, 360], [360, 480]))  # C4_0.75 -> C4_1.0; A#4 unknown
    ids = rep.encode(other)
    assert [rep.vocab[i] for i in ids] == ["C4_1.0", "<unk>"]
    assert notes_of(rep.canonical(other)) == notes_of(rep.decode(ids)) == [(60, 0, 480)]


def test_notes_needs_a_vocabulary_and_a_valid_config():
    with pytest.raises(UserError, match="fit"):
        get_representation("notes").encode(new_score())
    with pytest.raises(UserError, match="one grid step"):
        get_representation("notes", durations=[0.5, 1.0])
    with pytest.raises(UserError):
        get_representation("notes", durations=[0.3])
    with pytest.raises(UserError):
        bad_vocab = ["<pad>", "<bos>", "<eos>", "<unk>", "H9_1.0"]
        representation_from_dict({"name": "notes", "config": {}, "state": {"vocab": bad_vocab}})


def test_notes_track_selection_and_triplet_durations():
    score = new_score(tpq=480)
    score.tracks.append(make_track([60, 62, 64], [0, 160, 320], [160, 160, 160]))
    score.tracks.append(make_track([36], [0], [480]))
    config = {"steps_per_quarter": 3, "durations": [1 / 3, 2 / 3, 1.0], "tracks": [0]}
    rep = get_representation("notes", **config).fit([score])
    assert [rep.vocab[i] for i in rep.encode(score)] == ["C4_1/3", "D4_1/3", "E4_1/3"]


# ----- pianoroll, multitrack -----


def test_pianoroll_repairs_orphan_sustain_and_drops_out_of_range():
    rep = get_representation("pianoroll")
    roll = np.zeros((6, 88, 2), np.uint8)
    roll[0, 39, 0] = 1
    roll[1:3, 39, 1] = 1
    roll[4:6, 39, 1] = 1  # sustain with nothing before it: a new note
    assert notes_of(rep.decode(roll)) == [(60, 0, 360), (60, 480, 240)]
    score = new_score(tpq=480)
    score.tracks.append(make_track([10, 60, 120], [0, 0, 0], [480, 480, 480]))
    assert notes_of(rep.canonical(score)) == [(60, 0, 480)]
    with pytest.raises(UserError):
        rep.decode(np.zeros((4, 176)))


def test_multitrack_groups_programs_and_keeps_drum_hits():
    score = new_score(tpq=480)
    score.tracks.append(make_track([40], [0], [960], 90, program=33))  # bass
    score.tracks.append(make_track([70], [0], [480], 50, program=26))  # guitar
    score.tracks.append(make_track([42, 42, 42], [0, 120, 240], [120, 120, 120], 100, is_drum=True))
    rep = get_representation("multitrack")
    roll = rep.encode(score)
    assert roll.shape == (5, 8, 128)
    assert roll[2, :8, 40].tolist() == [90] * 8 and roll[1, :4, 70].tolist() == [50] * 4
    assert roll[4, :3, 42].tolist() == [100] * 3  # three hits, not one long note
    decoded = rep.decode(roll)
    assert [(t.name, t.program, t.is_drum, len(t.notes)) for t in decoded.tracks] == [
        ("piano", 0, False, 0), ("guitar", 24, False, 1), ("bass", 32, False, 1),
        ("strings", 48, False, 0), ("drums", 0, True, 3)]


def test_multitrack_windows_skip_silence_and_pad_the_end():
    roll = np.zeros((5, 600, 128), np.uint8)
    roll[0, 10, 60] = 80
    roll[3, 599, 50] = 70
    out = windows(roll, 256)
    assert out.shape == (2, 5, 256, 128) and out.dtype == np.uint8
    assert out[0, 0, 10, 60] == 80 and out[1, 3, 599 - 512, 50] == 70
    assert get_representation("multitrack").windows(np.zeros((5, 0, 128), np.uint8)).shape == (0, 5, 256, 128)
    with pytest.raises(UserError):
        windows(np.zeros((4, 10, 128)))


# ----- events -----


def test_events_tsd_without_programs_merges_pitched_tracks_and_drops_drums():
    score = new_score(tpq=480)
    score.tracks.append(make_track([60, 64], [0, 480], [480, 480], program=40))
    score.tracks.append(make_track([38], [0], [120], is_drum=True))
    rep = get_representation("events", tokenizer="TSD", use_programs=False)
    decoded = rep.decode(rep.encode(score))
    assert [(t.program, t.is_drum) for t in decoded.tracks] == [(0, False)]
    assert notes_of(decoded) == [(60, 0, 480), (64, 480, 480)]


def test_events_refuses_a_different_saved_vocabulary():
    rep = get_representation("events")
    data = rep.to_dict()
    data["state"]["vocab"] = data["state"]["vocab"][:-1]
    with pytest.raises(UserError, match="miditok"):
        representation_from_dict(data)
    with pytest.raises(UserError):
        get_representation("events", tokenizer="Octuple")


# ----- registry -----


def test_registry_errors_are_user_errors():
    with pytest.raises(UserError, match="unknown representation"):
        get_representation("midi-ish")
    with pytest.raises(UserError, match="bad config"):
        get_representation("grid", steps_per_beat=4)
    with pytest.raises(UserError):
        get_representation("pianoroll", steps_per_quarter=0)


def test_representations_import_neither_torch_nor_miditok():
    code = "import sys, tunesmith.representations; print('torch' in sys.modules, 'miditok' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
