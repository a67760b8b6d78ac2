"""MidiNet's decoding options of session 7 (`scale_penalty`, `min_recent_pitches`): the best-fitting
scale against hand-computed sets, each option doing what it says on an untrained generator, both off
by default (old recipes and checkpoints generate as before), and wrong values refused in one sentence
with exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tunesmith.core.errors import UserError
from tunesmith.data.bar_pairs import piece_profile
from tunesmith.models.distributions import SamplingConfig
from tunesmith.models.midinet import MidiNet, MidiNetConfig
from tunesmith.models.midinet_bars import off_scale_mask, pitches_to_bars, profile_log_prior
from tunesmith.training.config import load_config

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"noise_dim": 8, "gen_hidden": 32, "gen_channels": 8, "cond_channels": 4, "disc_first_channels": 4,
         "disc_channels": 8, "disc_hidden": 16, "seed_bank": 8, "chords": True, "profile": True}
D_MAJOR = {2, 4, 6, 7, 9, 11, 1}

pytestmark = pytest.mark.usefixtures("one_thread")


def _bar(pitches: list[int]) -> np.ndarray:
    """(16, 128) one bar: each pitch held for 16 / len(pitches) steps."""
    steps = np.repeat(pitches, 16 // len(pitches))
    return pitches_to_bars(torch.from_numpy(steps)[None]).numpy()[0]


def _profile(*bars: list[int]) -> torch.Tensor:
    return torch.from_numpy(piece_profile(np.stack([_bar(b) for b in bars])))[None]


def test_off_scale_mask_marks_the_pitches_outside_the_best_scale():
    d_major = off_scale_mask(_profile([62, 64, 66, 67], [69, 71, 73, 74]))[0]
    assert {p % 12 for p in range(128) if d_major[p] == 0} == D_MAJOR
    # A natural minor (= C major's set) with a raised seventh once: the set of C major still fits best
    a_minor = off_scale_mask(_profile([69, 71, 72, 74], [76, 77, 79, 81], [69, 72, 76, 68]))[0]
    assert {p % 12 for p in range(128) if a_minor[p] == 0} == {0, 2, 4, 5, 7, 9, 11}
    assert a_minor[68] == 1 and a_minor[69] == 0
    assert off_scale_mask(torch.zeros(1, 14)).sum() == 0  # a silent profile: nothing is off


def _d_major_model(**options) -> tuple[MidiNet, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = MidiNet(MidiNetConfig(**SMALL, **options)).eval()
    piece = torch.from_numpy(np.stack([_bar([62, 64, 66, 67]), _bar([69, 71, 73, 74])]))
    model.bank_pitches[:2] = torch.tensor([[55] * 16, [84] * 16], dtype=torch.int16)  # range 55..84
    model.bank_count += 2
    return model, piece[-1:].expand(6, -1, -1), _profile([62, 64, 66, 67], [69, 71, 73, 74]).expand(6, -1)


def test_scale_penalty_keeps_notes_in_the_pieces_scale():
    model, start, profiles = _d_major_model(scale_penalty=float("inf"))

    def classes() -> set[int]:
        bars = model.continue_bars(start, 4, torch.zeros(4, 13), torch.Generator().manual_seed(0), None, profiles)
        return set((bars.argmax(-1)[bars.amax(-1) > 0] % 12).tolist())

    assert classes() and classes() <= D_MAJOR
    model.config.scale_penalty = 0.0
    assert not classes() <= D_MAJOR  # the untrained generator alone leaves the scale


def test_min_recent_pitches_redraws_a_melody_stuck_on_two_notes():
    """A generator whose first draw of each bar alternates two pitches (never the bar before note for
    note, so the plain redraw rule lets it through) and whose redraw plays a new pitch: with
    `min_recent_pitches: 3` no 4 consecutive bars sound fewer than 3 pitches, without it they do."""
    model = MidiNet(MidiNetConfig(**SMALL, redraws=1)).eval()
    start = torch.from_numpy(_bar([62, 64]))[None].expand(2, -1, -1)
    state = {"redraw": False, "new": 70}
    judge = model.draw_again

    def draw_again(bar, written):
        again = judge(bar, written)
        state["redraw"] = bool(again.any())
        return again

    def stuck_first(prev, cond, bias, generator, sampling, prior=None):
        if not state["redraw"]:  # a bar's first draw: the two pitches of the bar before, swapped
            return torch.flip(prev, dims=[1])
        state["new"] += 1
        return pitches_to_bars(torch.full((len(prev), 16), state["new"]))

    model.draw_bar, model.draw_again = stuck_first, draw_again

    def fewest_pitches() -> int:
        state["redraw"] = False
        bars = model.continue_bars(start, 6, torch.zeros(6, 13), torch.Generator().manual_seed(0))
        return min(int(bars[:, i : i + 4].amax(dim=(1, 2)).sum(-1).min()) for i in range(3))

    assert fewest_pitches() == 2
    model.config.min_recent_pitches = 3
    assert fewest_pitches() >= 3


def test_new_options_are_off_by_default_and_in_every_recipe():
    assert MidiNetConfig().scale_penalty == 0 and MidiNetConfig().min_recent_pitches == 0
    for recipe in sorted((ROOT / "configs").glob("midinet*.yaml")):
        model = load_config(recipe).model
        if model.name == "midinet":
            config = MidiNetConfig(**model.config)
            assert config.scale_penalty == 0 and config.min_recent_pitches == 0, recipe.name


@pytest.mark.parametrize(("options", "message"), [
    ({"scale_penalty": -1.0}, "scale_penalty"),
    ({"min_recent_pitches": 65}, "min_recent_pitches"),
    ({"profile": False, "scale_penalty": 2.0}, "profile: true"),
    ({"profile": False, "profile_prior": 1.0}, "profile: true"),
    ({"interval_prior": -0.5}, "interval_prior"),
])
def test_wrong_values_are_refused(options, message):
    with pytest.raises(UserError, match=message):
        MidiNet.validate_config(MidiNetConfig(**{**SMALL, **options}))


def test_wrong_value_on_the_command_line_is_one_sentence_and_exit_2(tmp_path):
    exe = Path(sys.executable).with_name("tunesmith")
    done = subprocess.run([str(exe), "train", str(ROOT / "configs" / "debug" / "midinet.yaml"), "--out",
                           str(tmp_path / "run"), "--set", "model.config.scale_penalty=-2"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2 and "scale_penalty" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_interval_prior_from_the_seed_bank_against_hand_computed_values():
    model = MidiNet(MidiNetConfig(**SMALL))
    model.bank_pitches[:2] = torch.tensor([[60] * 4 + [62] * 4 + [64] * 4 + [65] * 4, [-1] * 16], dtype=torch.int16)
    model.bank_count += 2
    prior = model.interval_log_prior()  # intervals 2, 2, 1 (held notes once), add-one smoothed
    assert prior[0] == 0 and prior[2] == 0
    assert prior[1].item() == pytest.approx(np.log(2 / 3)) and prior[7].item() == pytest.approx(np.log(1 / 3))


def test_interval_prior_shortens_leaps_and_is_off_by_default():
    model, start, profiles = _d_major_model(hold_bias=1.0)
    drawn = SamplingConfig(temperature=1.0)  # an untrained generator's argmax is mostly one pitch or rests
    model.bank_pitches[2:6] = torch.from_numpy(np.repeat([[62, 64, 66, 67], [67, 66, 64, 62],
                                                          [69, 71, 73, 74], [74, 73, 71, 69]], 4, axis=1))
    model.bank_count += 4

    def mean_leap() -> float:
        bars = model.continue_bars(start, 4, torch.zeros(4, 13), torch.Generator().manual_seed(3), drawn, profiles)
        pitches = bars.argmax(-1)[bars.amax(-1) > 0].float()
        moves = (pitches[1:] - pitches[:-1]).abs()
        return float(moves[moves > 0].mean())

    plain = mean_leap()
    model.config.interval_prior = 5.0
    assert mean_leap() < plain / 2


def test_profile_log_prior_against_hand_computed_values():
    profile = _profile([62, 62, 62, 66], [69, 69, 66, 66])  # steps: D 6, F# 6, A 4 of 16
    prior = profile_log_prior(profile)[0]
    assert prior[62] == 0 and prior[66] == 0 and prior[74] == 0
    assert prior[69].item() == pytest.approx(np.log(0.25 + 0.02) - np.log(0.375 + 0.02))
    assert prior[60].item() == pytest.approx(np.log(0.02) - np.log(0.375 + 0.02))
    assert profile_log_prior(torch.zeros(1, 14)).abs().sum() == 0


def test_profile_prior_moves_notes_to_the_pieces_commonest_classes():
    model, start, profiles = _d_major_model()
    drawn = SamplingConfig(temperature=1.0)

    def share_on_d_and_f_sharp() -> float:
        bars = model.continue_bars(start, 4, torch.zeros(4, 13), torch.Generator().manual_seed(4), drawn, profiles)
        classes = bars.argmax(-1)[bars.amax(-1) > 0] % 12
        return float(((classes == 2) | (classes == 6)).float().mean())

    plain = share_on_d_and_f_sharp()
    model.config.profile_prior = 3.0
    assert share_on_d_and_f_sharp() > plain + 0.1


def test_profile_feedback_against_hand_computed_values():
    model = MidiNet(MidiNetConfig(**SMALL, profile_feedback=2.0))
    profile = _profile([62, 64])  # D and E, half the steps each
    written = torch.from_numpy(_bar([62]))[None, None]  # one bar on D only
    bias = model.feedback_bias(written, profile)[0, 0]
    # so far: 16 steps of D + one bar of pseudo-steps shared as the profile (8 D, 8 E) -> 0.75 / 0.25
    assert bias[62].item() == pytest.approx(2 * np.log(0.52 / 0.77), rel=1e-5)
    assert bias[76].item() == pytest.approx(2 * np.log(0.52 / 0.27), rel=1e-5)
    assert bias[61].item() == pytest.approx(0.0, abs=1e-6) and bias[128] == 0  # unused either way; the rest
    model.config.profile_feedback = 0.0
    assert model.feedback_bias(written, profile).abs().sum() == 0


def test_profile_feedback_brings_the_pieces_classes_nearer_its_profile():
    model, start, profiles = _d_major_model()
    drawn = SamplingConfig(temperature=1.0)

    def distance() -> float:
        bars = model.continue_bars(start, 6, torch.zeros(6, 13), torch.Generator().manual_seed(5), drawn, profiles)
        steps = bars.sum(dim=(1, 2))  # (B, 128)
        shares = torch.zeros(len(bars), 12).index_add_(1, torch.arange(128) % 12, steps)
        shares = shares / shares.sum(-1, keepdim=True)
        return float((shares - profiles[:, :12]).abs().sum(-1).mean())

    plain = distance()
    model.config.profile_feedback = 4.0
    assert distance() < plain * 0.7


@pytest.mark.parametrize("setting", ["scale_penalty=-1", "scale_penalty=abc", "nope=1"])
def test_ship_refuses_a_wrong_setting_and_keeps_the_shipped_file(tmp_path, setting):
    destination = tmp_path / "midinet.ckpt"
    destination.write_bytes(b"the shipped file")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "midinet_ship.py"),
                           str(ROOT / "src" / "tunesmith" / "checkpoints" / "midinet.ckpt"), str(destination),
                           "--set", setting], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert destination.read_bytes() == b"the shipped file" and sorted(tmp_path.iterdir()) == [destination]
