"""Best-of-m endings for countdown generation (generation/best_ending.py): with the shipped countdown
model, `candidates = m` keeps, per piece, the draw that passes the most cadence tests on its own notes
(then the one whose end the model believed in most), the piece still has exactly the requested bars, and
bad settings are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tunesmith.generation.best_ending as best_ending
import tunesmith.generation.countdown as countdown
from tunesmith.core.errors import UserError
from tunesmith.evaluation.form import ending_of
from tunesmith.generation.best_ending import EosRecorder, best_rows, candidates_of
from tunesmith.generation.generate import GenerateRequest, generate_scores, with_checkpoint_defaults
from tunesmith.models.checkpoint import load_model


def test_best_rows_takes_the_highest_of_each_group_and_the_first_on_ties():
    assert best_rows(np.array([0.1, 0.5, 0.2, -1, -1, -1, 0.3, 0.3, 0.0]), 3) == [1, 3, 6]
    assert best_rows(np.array([0.2, 0.1]), 1) == [0, 1]


class _Inner:
    enforce, invalid = True, np.zeros(2, np.int64)

    def allowed(self, device="cpu"):
        return torch.ones(2, 3, dtype=torch.bool)

    def update(self, ids):
        pass


def test_end_scores_are_the_probability_where_each_row_drew_its_end():
    recorder = EosRecorder(_Inner(), eos_id=2, batch=2)
    for logits in ([[0.0, 0.0, 0.0], [0.0, 0.0, 5.0]], [[0.0, 0.0, 2.0], [0.0, 0.0, 0.0]]):
        recorder.observe(torch.tensor(logits))
    scores = recorder.end_scores([[0, 2], [1, 1]])  # row 0 ends at step 1; row 1 never does
    assert scores[1] == -1 and scores[0] == pytest.approx(np.exp(2) / (np.exp(2) + 2))


@pytest.fixture(scope="module")
def form():
    return load_model("lstm-bach-form")


def _request(loaded, m: int, **kw) -> GenerateRequest:
    request = with_checkpoint_defaults(loaded, GenerateRequest(n=3, bars=4, seed=0, **kw))
    request.candidates = m
    return request


def test_best_of_m_keeps_the_best_closing_draw_and_exact_bars(form, monkeypatch):
    seen, scored, kept = [], [], []
    original = best_ending.EosRecorder.end_scores

    def spy(self, rows):
        seen.append(original(self, rows))
        return seen[-1]

    def score(pieces, p_eos):
        scored.append((pieces, best_ending.ending_scores(pieces, p_eos)))
        return scored[-1][1]

    def keep(scores, m):
        kept.append(best_rows(scores, m))
        return kept[-1]

    monkeypatch.setattr(best_ending.EosRecorder, "end_scores", spy)
    monkeypatch.setattr(countdown, "ending_scores", score)
    monkeypatch.setattr(countdown, "best_rows", keep)
    request = _request(form, 6)
    pieces = generate_scores(form, request)
    bar = 4 * form.representation.tpq
    assert len(pieces) == 3 and all(p.end() == 4 * bar for p in pieces)  # exactly the requested bars
    drawn, scores = scored[0]
    assert len(drawn) == 18 and len(request.decoding["pieces"]) == 3  # only the kept draws are reported
    assert kept[0] == (scores.reshape(3, 6).argmax(1) + 6 * np.arange(3)).tolist()  # each piece's own 6 draws
    assert [p.end() for p in pieces] == [drawn[k].end() for k in kept[0]]
    tests = np.floor(scores)  # cadence tests passed; the P(EOS) part lies in [0, 0.5)
    assert ((scores - tests) >= 0).all() and ((scores - tests) < 0.5).all()
    assert np.allclose(scores - tests, (seen[0] + 1) / 4, atol=1e-6)
    for k, piece in zip(kept[0], pieces, strict=True):  # what was kept passes the tests it was scored on
        e = ending_of(piece)
        assert e.tonic_bass + e.tonic_chord + e.held == tests[k] == tests[k - k % 6 : k - k % 6 + 6].max()


def test_ending_scores_put_a_cadence_above_any_end_belief():
    from tunesmith.core.score import make_track, new_score

    def chords(*sonorities):  # block half-note chords in 4/4
        score = new_score()
        step, pitch, start = 2 * score.ticks_per_quarter, [], []
        for i, chord in enumerate(sonorities):
            pitch, start = pitch + list(chord), start + [i * step] * len(chord)
        score.tracks.append(make_track(pitch, start, [step] * len(pitch)))
        return score

    C, F, G7, AM = (48, 64, 67, 72), (53, 65, 69, 72), (43, 65, 67, 71), (45, 64, 69, 72)
    cadence, half = chords(C, F, G7, C, F, G7, C), chords(C, F, C, F, C, G7)
    scores = best_ending.ending_scores([half, cadence, cadence], np.array([1.0, -1.0, 0.2]))
    assert scores[1] > scores[0] and scores[2] > scores[1]  # 3 tests beat 2 + any P(EOS); then P(EOS)
    assert best_rows(scores, 3) == [2]
    assert best_ending.ending_scores([chords(C, F, G7, C, F, G7, AM)], np.array([1.0]))[0] < 3  # deceptive


def test_bad_candidate_settings_are_refused(form):
    with pytest.raises(UserError, match="candidates must be"):
        generate_scores(form, _request(form, 0))
    with pytest.raises(UserError, match="exact bars"):
        generate_scores(form, _request(form, 2, ending="model"))
    assert candidates_of(GenerateRequest()) == 1


@pytest.mark.parametrize("name, message", [("lstm-bach", "bar countdown tokens"),
                                           ("midinet", "does not support --candidates")])
def test_candidates_from_the_cli_are_refused_where_they_cannot_apply(name, message, tmp_path, capsys, monkeypatch):
    import sys

    from tunesmith import cli

    monkeypatch.setattr(sys, "argv", ["tunesmith", "generate", name, "--out", str(tmp_path / "g"), "--n", "1",
                                      "--bars", "2", "--candidates", "3"])
    with pytest.raises(SystemExit) as stop:
        cli.main()
    err = capsys.readouterr().err
    assert stop.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_candidates_survive_the_checkpoint_sampling_defaults():
    from tunesmith.generation.generate import GenerateRequest, with_checkpoint_defaults
    from tunesmith.models.checkpoint import load_model

    request = GenerateRequest(candidates=5)
    assert with_checkpoint_defaults(load_model("lstm-bach-form"), request).candidates == 5
