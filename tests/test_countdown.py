"""Bar countdown tokens (issue 11, item 2): `events` with `countdown: K` labels the last K bar lines of a
piece with the bars left, decodes as without them, its grammar forces a requested length, and a
checkpoint grows its vocabulary rows for them (training/init_from.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import BACH40, LSTM_BACH_EVENTS
from test_grammar import UniformModel
from tunesmith.core.errors import UserError
from tunesmith.generation.sampling import GrammarConstraint, sample_sequence
from tunesmith.io.midi import read_midi
from tunesmith.models.distributions import SamplingConfig
from tunesmith.representations import get_representation
from tunesmith.representations.grammar import count_invalid
from tunesmith.training.init_from import initialise_from


def _reps(k: int = 8):
    plain = get_representation("events", **LSTM_BACH_EVENTS)
    return plain, get_representation("events", **LSTM_BACH_EVENTS, countdown=k)


def test_real_chorales_count_down_their_last_bars_and_decode_as_without():
    plain, counted = _reps(8)
    assert counted.vocab == plain.vocab + [f"Bar_{k}" for k in range(8)] and plain.countdown is None
    for path in sorted(BACH40.glob("*.mid"))[:4]:
        score = read_midi(path)
        ids, old = counted.encode(score), plain.encode(score)
        bars = [counted.vocab[i] for i in ids if counted.vocab[i].startswith("Bar")]
        assert len(bars) > 8
        assert bars == ["Bar_None"] * (len(bars) - 8) + [f"Bar_{k}" for k in range(7, -1, -1)]
        assert np.array_equal(counted.countdown.far(ids), old)  # only the bar tokens differ
        a, b = counted.decode(ids), plain.decode(old)
        assert a.note_num() == b.note_num() > 50 and a.end() == b.end()
        assert counted.span(ids) == plain.span(old) and counted.invalid_tokens(ids) == 0


def test_a_short_piece_counts_every_bar_and_options_are_checked():
    plain, counted = _reps(16)
    ids = counted.encode(read_midi(sorted(BACH40.glob("*.mid"))[0]))
    bars = [counted.vocab[i] for i in ids if counted.vocab[i].startswith("Bar")]
    assert bars[-1] == "Bar_0" and "Bar_None" not in bars[-16:]
    with pytest.raises(UserError, match="REMI"):
        get_representation("events", tokenizer="TSD", countdown=8)
    with pytest.raises(UserError, match="countdown must be between"):
        get_representation("events", countdown=-1)


def _ids(rep, tokens):
    return np.array([rep.vocab.index(t) for t in tokens])


def test_grammar_counts_down_forces_a_window_and_ends_with_eos_in_the_last_bar():
    _, rep = _reps(8)
    grammar, vocab = rep.grammar(), rep.vocab
    state = grammar.start(1)

    def bars_allowed() -> set[str]:
        return {vocab[i] for i in np.flatnonzero(grammar.allowed(state)[0]) if vocab[i].startswith("Bar")}

    assert bars_allowed() == {"Bar_None", *(f"Bar_{k}" for k in range(8))}  # from the start: any
    grammar.expect(state, 2, 2)
    assert bars_allowed() == {"Bar_2"}
    note = ["Position_0", "Pitch_60", "Duration_1.0.4"]
    for token in ["Bar_2", *note, "Bar_1", *note]:
        assert grammar.advance(state, _ids(rep, [token]))[0], token
    eos = rep.eos_id
    assert bars_allowed() == {"Bar_0"} and not grammar.allowed(state)[0, eos]
    for token in ["Bar_0", "Position_0", "Pitch_60"]:
        grammar.advance(state, _ids(rep, [token]))
        assert not bars_allowed() and not grammar.allowed(state)[0, eos]  # EOS only after a whole note
    grammar.advance(state, _ids(rep, ["Duration_1.0.4"]))
    assert grammar.allowed(state)[0, eos] and not bars_allowed()
    grammar.advance(state, np.array([eos]))
    assert np.flatnonzero(grammar.allowed(state)[0]).tolist() == [eos]
    # a window of 1..9 bars left: any countdown start, or far; far twice leaves only Bar_7
    state = grammar.start(1)
    grammar.expect(state, 1, 9)
    assert bars_allowed() == {"Bar_None", *(f"Bar_{k}" for k in range(1, 8))}
    for token in ["Bar_None", *note] * 2:
        grammar.advance(state, _ids(rep, [token]))
    assert bars_allowed() == {"Bar_7"}
    # replays: a skipped count, a countdown after far that does not start at K - 1, EOS mid-piece
    assert count_invalid(grammar, _ids(rep, ["Bar_5", *note, "Bar_3", "Bar_4", *note])) == 1
    assert count_invalid(grammar, _ids(rep, ["Bar_None", *note, "Bar_6", "Bar_7", *note])) == 1
    assert count_invalid(grammar, _ids(rep, ["Bar_1", *note, "EOS_None"])) == 1
    assert count_invalid(grammar, _ids(rep, ["Bar_1", *note, "Bar_0", *note, "EOS_None", "EOS_None"])) == 0


def test_any_model_under_the_countdown_writes_exactly_the_requested_bars():
    _, rep = _reps(4)
    model, generator = UniformModel(rep.vocab_size), torch.Generator().manual_seed(0)
    constraint = GrammarConstraint(rep.grammar(), [], 6)
    rep.grammar().expect(constraint.state, 5, 5)  # six bars: far, Bar_4 .. Bar_0 (K = 4: Bar_3 .. Bar_0)
    prefix = torch.full((6, 1), rep.bos_id)
    new = sample_sequence(model, prefix, 400, SamplingConfig(), generator, [rep.pad_id, rep.bos_id],
                          constraint=constraint)
    assert constraint.invalid.tolist() == [0] * 6
    for row in new.tolist():
        bars = [rep.vocab[i] for i in row if rep.vocab[i].startswith("Bar")]
        assert bars == ["Bar_None", "Bar_None", "Bar_3", "Bar_2", "Bar_1", "Bar_0"]
        end = row.index(rep.eos_id)  # uniform draws reach EOS in the last bar within 400 tokens
        assert set(row[end:]) == {rep.eos_id} and rep.vocab[row[end - 1]].startswith("Duration")
        assert rep.decode(np.array(row)).note_num() > 0


@pytest.fixture(scope="module")
def grown():
    """lstm-bach with countdown rows grown from its Bar row, not trained: the generation path alone."""
    import dataclasses

    from tunesmith.models.checkpoint import LoadedModel, build_or_explain, load_model

    old = load_model("lstm-bach")
    if old.representation.countdown is not None:  # the shipped model counts down already
        return old
    rep = get_representation("events", **{**dataclasses.asdict(old.representation.config), "countdown": 8})
    model = build_or_explain("lstm", dataclasses.replace(old.model.config, vocab_size=rep.vocab_size), "test")
    initialise_from(model, "lstm", rep.vocab, "lstm-bach", noise=0.0)
    return LoadedModel(model.eval(), rep, {**old.checkpoint, "representation": rep.to_dict()}, old.path)


def test_generation_lasts_the_requested_bars_or_the_models_choice_in_the_window(grown):
    from tunesmith.core.score import bar_line_after
    from tunesmith.generation.endings import extra_bars
    from tunesmith.generation.generate import GenerateRequest, generate_scores

    bar = 4 * grown.representation.tpq
    exact = GenerateRequest(n=2, bars=3, seed=1)
    for score in generate_scores(grown, exact):
        assert score.end() == 3 * bar and score.note_num() > 0
    assert exact.decoding["constrained"] and exact.decoding["invalid_tokens"] == 0
    chosen = GenerateRequest(n=2, bars=2, seed=2, ending="model")
    for score in generate_scores(grown, chosen):
        assert score.end() % bar == 0 and 2 * bar <= score.end() <= (2 + extra_bars(2)) * bar
    path = sorted(BACH40.glob("*.mid"))[1]
    primed = GenerateRequest(n=1, bars=2, seed=3, primer=path, primer_bars=4)
    (score,) = generate_scores(grown, primed)
    from tunesmith.core.score import copy_meta
    from tunesmith.generation.generate import read_primer

    primer = grown.representation.canonical(read_primer(path, 4))
    assert score.end() == bar_line_after(copy_meta(primer, primer.ticks_per_quarter), 2, primer.end()) == 6 * bar
    free = GenerateRequest(n=1, steps=40, seed=4)
    (score,) = generate_scores(grown, free)
    assert free.decoding["pieces"][0]["sampled_tokens"] == 40 and score.note_num() > 0


def test_primer_bars_are_relabelled_with_their_distance_to_the_end():
    _, rep = _reps(4)
    ids = rep.encode(read_midi(sorted(BACH40.glob("*.mid"))[0]))
    n = rep.countdown.n_bars(ids)
    relabelled = rep.countdown.label(ids, n + 2)  # two more bars will follow the primer
    bars = [rep.vocab[i] for i in relabelled if rep.vocab[i].startswith("Bar")]
    assert bars[-2:] == ["Bar_3", "Bar_2"] and set(bars[:-2]) == {"Bar_None"}
    assert np.array_equal(rep.countdown.far(relabelled), rep.countdown.far(ids))


def test_the_shipped_countdown_model_generates_exact_bars_from_the_cli(tmp_path, monkeypatch, capsys):
    import json

    from symusic import Score

    from cli_run import run_cli

    code, _, err = run_cli(monkeypatch, capsys, "generate", "lstm-bach-form", "--out", str(tmp_path), "--n", "2",
                           "--bars", "2", "--seed", "5")
    assert code == 0, err
    scores = [Score(str(p)) for p in sorted(tmp_path.glob("sample_*.mid"))]
    assert len(scores) == 2 and all(s.end() == 8 * s.ticks_per_quarter and s.note_num() > 4 for s in scores)
    decoding = json.loads((tmp_path / "generation.json").read_text())["decoding"]
    assert decoding["constrained"] and decoding["invalid_tokens"] == 0
