"""Token grammars (representations/grammar.py): real encodings are grammatical, grammatical sequences
decode with one note per pitch token, ungrammatical ones lose notes, and constrained decoding from the
CLI draws no forbidden token."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import real_midi_files
from tunesmith.cli import main
from tunesmith.core.errors import SkipFile
from tunesmith.generation.sampling import GrammarConstraint, sample_sequence
from tunesmith.io.midi import read_midi
from tunesmith.models.distributions import SamplingConfig
from tunesmith.representations import get_representation
from tunesmith.representations.grammar import count_invalid, grammar_for

BACH40 = Path(__file__).parent / "fixtures" / "bach40"
CONFIGS = [
    {},  # REMI with programs (drums sort after program 0) and velocities
    {"tokenizer": "TSD"},
    {"use_tempos": True},
    {"tokenizer": "TSD", "use_tempos": True, "velocities": 0},
    {"steps_per_quarter": 4, "max_duration_quarters": 4, "velocities": 0, "use_programs": False},  # lstm-bach
    {"tokenizer": "TSD", "use_programs": False},
    {"pitch_low": 40, "pitch_high": 90},  # drums cut to the pitch range
]


def _scores():
    scores = []
    for path in real_midi_files()[::5] + sorted(BACH40.glob("*.mid"))[:3]:
        try:
            scores.append(read_midi(path))
        except SkipFile:
            continue
    return scores


@pytest.fixture(scope="module")
def scores():
    return _scores()


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_every_real_encoding_is_grammatical(config, scores):
    rep = get_representation("events", **config)
    counted = 0
    for score in scores:
        ids = rep.encode(score)[:1500]
        assert rep.invalid_tokens(ids) == 0
        counted += len(ids)
    assert counted > 8_000


def _random_walk(grammar, rng, n: int, enforce: bool = True) -> np.ndarray:
    """n ids drawn uniformly among the allowed ones (or among all non-special ones)."""
    state, ids = grammar.start(1), []
    for _ in range(n):
        allowed = grammar.allowed(state)[0] if enforce else grammar.phase_mask.any(0)
        token = int(rng.choice(np.flatnonzero(allowed)))
        grammar.advance(state, np.array([token]))
        ids.append(token)
    return np.array(ids)


def _miditok_errors(rep, ids: np.ndarray) -> float:
    """miditok's own checker (`tokens_errors`: token-type order, time going back): share of bad tokens."""
    from miditok import TokSequence

    seq = TokSequence(ids=ids.tolist())
    errors = rep.tokenizer.tokens_errors(seq if rep.config.use_programs else [seq])
    return errors if rep.config.use_programs else errors[0]


def _notes(score) -> list[tuple]:
    return sorted((n.time, n.pitch, n.duration, t.program, t.is_drum) for t in score.tracks for n in t.notes)


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_grammatical_sequences_decode_one_note_per_pitch_token(config):
    """The decoder keeps every note the tokens write (nothing dropped), encoding it back gives the same
    notes, and miditok's own checker finds no error; random sequences that ignore the grammar lose notes
    (so this test can fail)."""
    rep = get_representation("events", **config)
    grammar, rng = rep.grammar(), np.random.default_rng(0)
    is_pitch = np.array([t.startswith("Pitch") for t in rep.vocab])
    for _ in range(8):
        ids = _random_walk(grammar, rng, 400)
        pitches = ids[is_pitch[ids]]
        decoded = rep.decode(ids)
        complete = decoded.note_num() in (len(pitches), len(pitches) - 1)  # the walk may stop inside a note
        assert complete and rep.invalid_tokens(ids) == 0 and _miditok_errors(rep, ids) == 0
        assert _notes(rep.decode(rep.encode(decoded))) == _notes(decoded)
    wild = _random_walk(grammar, rng, 400, enforce=False)
    assert rep.invalid_tokens(wild) > 40 and _miditok_errors(rep, wild) > 0.3
    assert rep.decode(wild).note_num() < is_pitch[wild].sum() - 1


def test_golden_remi_masks_and_replay():
    rep = get_representation("events", steps_per_quarter=4, max_duration_quarters=4, velocities=0,
                             use_programs=False)
    grammar, vocab = rep.grammar(), rep.vocab
    ids = {token: i for i, token in enumerate(vocab)}
    state = grammar.start(1)

    def allowed_kinds() -> set[str]:
        return {vocab[i].split("_")[0] for i in np.flatnonzero(grammar.allowed(state)[0])}

    assert allowed_kinds() == {"Bar"}
    for token in ("Bar_None", "Position_4"):
        assert grammar.advance(state, np.array([ids[token]]))[0]
    assert allowed_kinds() == {"Pitch"}
    grammar.advance(state, np.array([ids["Pitch_60"]]))
    assert allowed_kinds() == {"Duration"}
    grammar.advance(state, np.array([ids["Duration_1.0.4"]]))
    allowed = {vocab[i] for i in np.flatnonzero(grammar.allowed(state)[0])}
    assert "Pitch_59" not in allowed and {"Pitch_60", "Pitch_108", "Bar_None", "Position_5"} <= allowed
    assert "Position_4" not in allowed and "Position_3" not in allowed and "Pitch_109" not in allowed
    assert not any(t.startswith("PitchDrum") or t.endswith("_None") and t != "Bar_None" for t in allowed)
    # replay: a step back in time, a pitch without its duration, a special token: 3 invalid
    seq = ["Bar_None", "Position_8", "Pitch_60", "Duration_1.0.4", "Position_2", "Pitch_62", "Pitch_64",
           "Duration_0.2.4", "MASK_None", "Bar_None", "Position_0", "Pitch_50", "Duration_0.1.4"]
    assert count_invalid(grammar, np.array([ids[t] for t in seq])) == 3


def test_tsd_splits_long_gaps_only_after_the_longest_shift():
    rep = get_representation("events", tokenizer="TSD", use_programs=False, velocities=0)
    grammar, ids = rep.grammar(), {token: i for i, token in enumerate(rep.vocab)}
    longest = "TimeShift_8.0.8"  # max_duration_quarters 8 at 8 steps per quarter
    assert longest in ids and "TimeShift_8.1.8" not in ids
    ok = ["TimeShift_1.0.8", "Pitch_60", "Duration_1.0.8", longest, "TimeShift_1.0.8", "Pitch_60", "Duration_1.0.8"]
    bad = ["TimeShift_1.0.8", "TimeShift_1.0.8", "Pitch_60", "Duration_1.0.8"]
    assert count_invalid(grammar, np.array([ids[t] for t in ok])) == 0
    assert count_invalid(grammar, np.array([ids[t] for t in bad])) == 1


def test_notes_ban_unk_and_grid_needs_no_grammar():
    notes = get_representation("notes").fit([read_midi(p) for p in sorted(BACH40.glob("*.mid"))[:2]])
    grammar = grammar_for(notes)
    assert not grammar.allowed(grammar.start(2))[:, notes.unk_id].any()
    assert grammar.allowed(grammar.start(1))[0].sum() == notes.vocab_size - 1
    assert grammar_for(get_representation("grid")) is None


class UniformModel:
    """Every token equally likely, whatever came before: left alone it breaks any grammar often."""

    def __init__(self, vocab: int):
        self.vocab = vocab

    def stepper(self):
        return self

    def initial_state(self, batch, device, generator=None):
        return None

    def __call__(self, tokens, state):
        return torch.zeros(tokens.shape[0], self.vocab), state

    def choose(self, logits, sampling, generator):
        from tunesmith.models.distributions import sample_categorical

        return sample_categorical(logits, sampling, generator)


def test_the_sampler_under_a_grammar_draws_only_allowed_tokens_after_a_primer():
    rep = get_representation("events", steps_per_quarter=4, max_duration_quarters=4, velocities=0,
                             use_programs=False)
    body = rep.encode(read_midi(BACH40 / "chorale_04_5.mid")).tolist()[:200]
    model, generator = UniformModel(rep.vocab_size), torch.Generator().manual_seed(0)
    prefix = torch.tensor([[rep.bos_id, *body]] * 4)
    masked = GrammarConstraint(rep.grammar(), body, 4)
    new = sample_sequence(model, prefix, 500, SamplingConfig(), generator, constraint=masked)
    assert masked.drawn == 500 and masked.invalid.tolist() == [0, 0, 0, 0]
    for row in new.tolist():
        assert rep.invalid_tokens(np.array(body + row)) == 0
    free = GrammarConstraint(rep.grammar(), body, 4, enforce=False)
    sample_sequence(model, prefix, 500, SamplingConfig(), generator, constraint=free)
    assert (free.invalid > 250).all()  # most uniform draws break the grammar


def test_generate_reports_invalid_tokens_with_and_without_the_mask(tmp_path, monkeypatch, capsys):
    counts = {}
    for flag in ([], ["--no-constrain"]):
        out = tmp_path / ("free" if flag else "masked")
        monkeypatch.setattr("sys.argv", ["tunesmith", "generate", "lstm-bach", "--out", str(out), "--n", "4",
                                         "--bars", "4", "--temperature", "1.5", "--seed", "1", *flag])
        with pytest.raises(SystemExit) as exit_info:
            main()
        assert exit_info.value.code == 0, capsys.readouterr().err
        decoding = json.loads((out / "generation.json").read_text())["decoding"]
        assert decoding["grammar"] == "EventsGrammar" and decoding["constrained"] == (not flag)
        assert len(decoding["pieces"]) == 4 and decoding["sampled_tokens"] > 4 * 100
        counts[bool(flag)] = decoding["invalid_tokens"]
    assert counts[False] == 0 and counts[True] > 0  # hot sampling breaks the grammar without the mask


def test_drums_outside_the_pitch_range_are_left_out_by_encode_not_lost_by_decode():
    rep = get_representation("events", pitch_low=40, pitch_high=90)
    score = read_midi(Path(__file__).parent / "fixtures" / "realmidi" / "miditok_tests" / "MIDIs_multitrack"
                      / "Funkytown.mid")
    canonical = rep.canonical(score)
    drums = [n.pitch for t in canonical.tracks if t.is_drum for n in t.notes]
    assert drums and min(drums) >= 40 and max(drums) <= 88
    assert _notes(rep.decode(rep.encode(score))) == _notes(canonical)
