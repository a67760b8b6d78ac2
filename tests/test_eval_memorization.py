"""Memorization check: tokens, transposition invariance, exact spans, multitrack copies, nothing found."""

from __future__ import annotations

import math

import numpy as np

from tunesmith.core.score import make_track, new_score, transpose
from tunesmith.evaluation.memorization import (
    Thresholds,
    build_index,
    check_piece,
    check_set,
    ngram_hashes,
    note_tokens,
    summarize,
)

TPQ = 480


def _melody(pitches, iois_in_8ths, program=0):
    start = np.concatenate([[0], np.cumsum(iois_in_8ths)[:-1]]) * (TPQ // 2)
    s = new_score(tpq=TPQ)
    s.tracks.append(make_track(pitches, start, [TPQ // 2] * len(pitches), program=program))
    return s


def _random_melody(rng, n):
    return list(60 + np.cumsum(rng.integers(-4, 5, n)).clip(-20, 20)), list(rng.integers(1, 4, n))


def test_tokens_are_interval_and_ioi():
    s = _melody([60, 62, 59], [1, 2, 1])  # 8th then quarter
    (tokens,) = note_tokens(s)
    # (interval + 128) * 64 + IOI in 1/12 quarters: +2 after an 8th (6), -3 after a quarter (12)
    assert tokens.tolist() == [(2 + 128) * 64 + 6, (-3 + 128) * 64 + 12]


def test_hashes_are_transposition_invariant_and_distinct():
    rng = np.random.default_rng(0)
    s = _melody(*_random_melody(rng, 40))
    h = ngram_hashes(note_tokens(s)[0], 8)
    np.testing.assert_array_equal(h, ngram_hashes(note_tokens(transpose(s, 7))[0], 8))
    assert len(h) == 39 - 8 + 1 and len(np.unique(h)) > 25


def test_longest_span_is_exact_for_a_transposed_excerpt():
    rng = np.random.default_rng(1)
    pitches, iois = _random_melody(rng, 60)
    train = [_melody(pitches, iois), _melody(*_random_melody(rng, 60))]
    # notes 10..39 of piece 0, a fifth up, then 10 notes that leap far (no training interval is that large)
    excerpt = [p + 7 for p in pitches[10:40]] + [110 - 3 * (i % 2) * 30 for i in range(10)]
    generated = _melody(excerpt, iois[10:40] + [1] * 10)
    result = check_piece(build_index(train, ["a", "b"], n=8), generated, "g")
    assert result.longest_span_notes == 30 and result.nearest == "a"
    # 40 notes, 39 tokens, 32 8-grams: the 22 lying inside the 29 copied tokens are found, no other
    assert result.fraction_found == 22 / 32
    assert result.n_notes == 40


def test_copy_is_flagged_and_unrelated_piece_is_not():
    rng = np.random.default_rng(2)
    train = [_melody(*_random_melody(rng, 50)) for _ in range(20)]
    index = build_index(train, [f"t{i}" for i in range(20)])
    results = check_set(index, [transpose(train[3], -5), _melody(*_random_melody(rng, 50))], ["copy", "new"])
    assert results[0].copied and results[0].fraction_found == results[0].fraction_closest == 1.0
    assert results[0].nearest == "t3"
    assert results[0].longest_span_notes == 50
    assert not results[1].copied and results[1].longest_span_notes < 16
    assert summarize(results)["copies"] == 1


def test_multitrack_copies_are_found_as_one_track_or_one_voice():
    rng = np.random.default_rng(3)
    two_voices = _melody(*_random_melody(rng, 40))
    bass = _melody(*_random_melody(rng, 40), program=33)
    bass.tracks[0].shift_pitch(-24, inplace=True)
    two_voices.tracks.append(bass.tracks[0])
    index = build_index([two_voices], ["chorale"])
    merged = new_score(tpq=TPQ)  # both voices written into one piano track
    table = [(n.pitch, n.time, n.duration) for t in two_voices.tracks for n in t.notes]
    merged.tracks.append(make_track(*zip(*table, strict=True)))
    assert check_piece(index, merged).fraction_found == 1.0
    voice_only = new_score(tpq=TPQ)
    voice_only.tracks.append(two_voices.tracks[1].copy())  # the bass line alone, as a melody
    assert check_piece(index, transpose(voice_only, 12)).longest_span_notes == 40


def test_short_and_empty_pieces_are_not_judged():
    index = build_index([_melody([60, 62, 64, 65, 67, 69, 71, 72, 74, 76], [1] * 10)])
    short = check_piece(index, _melody([60, 62, 64], [1, 1, 1]))
    assert math.isnan(short.fraction_found) and not short.copied and short.longest_span_notes == 0
    empty = check_piece(index, new_score())
    assert empty.n_notes == 0 and not empty.copied
    assert check_piece(build_index([]), _melody([60, 62, 64] * 5, [1] * 15)).fraction_found == 0.0


def test_thresholds_decide_the_flag():
    rng = np.random.default_rng(4)
    pitches, iois = _random_melody(rng, 60)
    index = build_index([_melody(pitches, iois)])
    half = _melody(pitches[:30] + [100, 40] * 15, iois[:30] + [1] * 30)
    assert not check_piece(index, half, thresholds=Thresholds(fraction=0.9, span_notes=31)).copied
    assert check_piece(index, half, thresholds=Thresholds(fraction=0.9, span_notes=30)).copied


def test_patchwork_of_short_fragments_is_not_a_copy():
    rng = np.random.default_rng(5)
    melodies = [_random_melody(rng, 50) for _ in range(4)]
    index = build_index([_melody(*m) for m in melodies])
    # 12 notes from each of the 4 pieces, one after another: 48 notes, 47 tokens, 40 8-grams, of which
    # 4 lie inside each fragment's 11 tokens: 16 are known to the set, 4 to any one piece
    pitches = [p for pitch, _ in melodies for p in pitch[:12]]
    iois = [i for _, ioi in melodies for i in ioi[:12]]
    result = check_piece(index, _melody(pitches, iois))
    assert (result.fraction_found, result.fraction_closest) == (16 / 40, 4 / 40)
    assert result.longest_span_notes == 12 and not result.copied


def test_very_common_ngrams_count_as_found_but_not_in_spans(monkeypatch):
    from tunesmith.evaluation import memorization

    repeated = _melody([60] * 30, [1] * 30)  # one 8-gram, 22 times
    index = build_index([repeated] * 3)
    assert check_piece(index, repeated).longest_span_notes == 30
    monkeypatch.setattr(memorization, "MAX_OCCURRENCES", 50)  # 66 occurrences: too common now
    result = check_piece(index, repeated)
    assert result.fraction_found == 1.0 and result.longest_span_notes == 0 and result.fraction_closest == 0
