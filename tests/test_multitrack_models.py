"""The multitrack chain (window-ae, latent predictors, band): planes, staging, note rules, end to end.

Data: the MIT-licensed multitrack fixtures (tests/fixtures/realmidi/miditok_tests, see LICENCE-NOTE.md),
as MIDI and written as LPD-5 npz files."""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np
import pytest
import torch

from conftest import REALMIDI
from test_lpd_source import write_lpd
from tunesmith.core.errors import UserError
from tunesmith.data.build import prepare_data
from tunesmith.data.config import DataConfig
from tunesmith.generation.band import band_representation, note_density
from tunesmith.generation.generate import GenerateRequest, generate_command
from tunesmith.io.midi import read_midi
from tunesmith.models import build_model, make_config
from tunesmith.models.band import BandModel
from tunesmith.models.band_rolls import velocity_rolls
from tunesmith.models.checkpoint import load_model
from tunesmith.models.distributions import SamplingConfig
from tunesmith.models.window_ae import roll_planes
from tunesmith.resources import shipped_recipe
from tunesmith.training.config import load_config
from tunesmith.training.loop import train

MULTITRACK = REALMIDI / "miditok_tests" / "MIDIs_multitrack"
pytestmark = pytest.mark.usefixtures("one_thread")


def _frames(roll: np.ndarray) -> torch.Tensor:
    """(5, T, 128) roll -> a batch of one (1, T, 5, 128) float frame window."""
    return torch.from_numpy(roll.astype(np.float32)).permute(1, 0, 2)[None]


def test_planes_mark_onsets_where_the_velocity_changes_and_every_drum_hit():
    roll = np.zeros((5, 6, 128), np.uint8)
    roll[0, 0:4, 60] = [80, 80, 90, 90]  # two piano notes back to back (velocity changes at step 2)
    roll[4, 1:3, 36] = 100  # two kick hits in a row
    planes = roll_planes(_frames(roll))[0]  # (5, 2, T, 128)
    assert planes[0, 0, :, 60].tolist() == [1, 0, 1, 0, 0, 0]  # onsets
    assert planes[0, 1, :, 60].tolist() == [1, 1, 1, 1, 0, 0]  # sustain
    assert planes[4, 0, :, 36].tolist() == [0, 1, 1, 0, 0, 0]
    assert planes.shape == (5, 2, 6, 128)


def test_decoded_planes_give_back_the_notes_of_a_real_song():
    """Planes of a real multitrack roll -> velocity rolls -> notes: the same onsets and sounding steps."""
    rep = band_representation(build_model("band", make_config("band", {}, {})))
    roll = rep.encode(read_midi(MULTITRACK / "Funkytown.mid"))[:, :256]
    planes = roll_planes(_frames(roll))[0].numpy().astype(bool)
    rebuilt = velocity_rolls(planes[None, :, 0], planes[None, :, 1])[0]
    again = roll_planes(_frames(rep.encode(rep.decode(rebuilt))))[0].numpy().astype(bool)
    assert np.array_equal(again[:, :, :256], planes)  # onsets and sustain, every group
    assert planes[:, 0].sum() > 500  # the song has notes in this stretch


def test_band_trains_the_autoencoder_alone_then_the_predictors_too():
    model = build_model("band", make_config("band", {"window": 8, "latent_dim": 4, "channels": 4, "hidden": 8,
                                                     "layers": 1, "ae_steps": 1}, {}))
    for step in range(2):
        model.zero_grad()
        model.loss(model.example_batch())["loss"].backward()
        predictor_grads = [p.grad for p in model.predictors.parameters()]
        assert all(g is None for g in predictor_grads) == (step == 0)
    model.eval()
    assert "pred_mse/drums" in model.loss(model.example_batch())  # validation always scores every term


@pytest.mark.parametrize("every", [1, 3])
def test_the_decoding_tables_learn_on_every_kth_training_batch(every):
    torch.manual_seed(0)  # the latent noise of training makes each batch's tables differ
    model = build_model("band", make_config("band", {**BandModel.debug_config(), "tables_every": every}, {}))
    roll = band_representation(model).encode(read_midi(MULTITRACK / "Funkytown.mid"))[:, 256:272]
    batch = {"frames": _frames(roll).expand(2, -1, -1, -1), "mask": torch.ones(2, 16, dtype=torch.bool)}
    seen = []
    for _ in range(6):
        model.loss(batch)["loss"].backward()
        seen.append((int(model.notes.batches), int(model.notes.count_batches), model.notes.thresholds.clone()))
    assert [b for b, _, _ in seen] == [c for _, c, _ in seen] == [(k + 1) // every for k in range(6)]
    unchanged = [torch.equal(a[2], b[2]) for a, b in zip(seen[:-1], seen[1:], strict=True)]
    assert unchanged == [(k + 2) % every != 0 for k in range(5)]  # the thresholds move on refresh steps only
    model.eval()
    model.loss(batch)  # validation never updates them
    assert int(model.notes.batches) == seen[-1][0]


def test_a_band_model_refuses_frames_that_are_not_multitrack():
    model = build_model("band", make_config("band", {"window": 8, "latent_dim": 4, "channels": 4}, {}))
    with pytest.raises(UserError, match="multitrack"):
        model.loss({"frames": torch.zeros(2, 16, 88, 2), "mask": torch.ones(2, 16, dtype=torch.bool)})
    with pytest.raises(UserError, match="multiple of 8"):
        make_config("band", {"window": 12}, {})


def test_band_data_are_pairs_of_consecutive_windows_from_an_lpd_folder(tmp_path):
    for song in ("Aicha.mid", "Mr. Blue Sky.mid", "Funkytown.mid"):
        write_lpd(tmp_path / "lpd" / f"{song[:-4]}.npz", song)
    config = DataConfig(source=str(tmp_path / "lpd"), representation="multitrack",
                        representation_config={"steps_per_quarter": 4}, window=32, stride=16, valid_fraction=0.3)
    prepared = prepare_data(config, "frames")
    item = prepared.train[0]
    assert item["frames"].shape == (32, 5, 128)
    assert all(prepared.train[i]["frames"].any() for i in range(len(prepared.train)))  # no silent windows


@pytest.fixture(scope="module")
def band_run(tmp_path_factory) -> Path:
    """The debug band recipe, trained from the CLI's entry point (seconds). Its 12 steps leave the decoder's
    probabilities flat, so it decodes by Bernoulli draws: every group gets notes for the layout checks."""
    run = tmp_path_factory.mktemp("band") / "run"
    config = load_config(shipped_recipe("debug/band"), [f"data.source={MULTITRACK}", "model.config.decoding=sample"])
    return train(config, run)


def test_a_trained_band_writes_five_tracks_with_their_programs_and_a_drum_channel(band_run, tmp_path):
    request = GenerateRequest(n=2, bars=16, seed=3, audio=None, plot=True)
    written = list(generate_command(str(band_run), tmp_path, request))
    midis = [p for p in written if p.suffix == ".mid"]
    assert len(midis) == 2 and any(p.suffix == ".png" for p in written)
    first, second = (read_midi(p) for p in midis)
    assert [(t.program, t.is_drum) for t in first.tracks] == [(0, False), (24, False), (32, False), (48, False),
                                                              (0, True)]
    assert first.end() == 16 * 4 * first.ticks_per_quarter  # exactly 16 bars
    assert first.note_num() > 0 and first.dumps_midi() != second.dumps_midi()  # noise makes pieces differ
    channels = {m.channel for m in mido.MidiFile(midis[0]).play() if m.type == "note_on"}  # a second reader
    assert 9 in channels  # drums on the GM drum channel


def test_a_band_continues_a_multitrack_primer_after_its_bars(band_run, tmp_path):
    primer = MULTITRACK / "What a Fool Believes.mid"
    request = GenerateRequest(n=1, bars=4, seed=1, primer=primer, primer_bars=2,
                              sampling=SamplingConfig(temperature=0.8))
    (path,) = [p for p in generate_command(str(band_run), tmp_path, request) if p.suffix == ".mid"]
    score = read_midi(path)
    assert score.end() == 6 * 4 * score.ticks_per_quarter  # 2 primer bars + 4 new ones
    loaded = load_model(band_run)
    rolls = loaded.model.sample(_plan(loaded, primer), torch.Generator().manual_seed(0))
    assert note_density(rolls[0], 32).shape == (rolls[0].shape[1] // 32, 5)


def _plan(loaded, primer):
    from tunesmith.core.score import last_bars
    from tunesmith.models.base import SamplePlan

    context = band_representation(loaded.model).encode(last_bars(read_midi(primer), 2))
    return SamplePlan(1, 4, context)


def test_a_band_refuses_a_primer_not_in_four_four(band_run, tmp_path):
    from symusic import TimeSignature

    score = read_midi(MULTITRACK / "Funkytown.mid")
    score.time_signatures.clear()
    score.time_signatures.append(TimeSignature(0, 3, 4))
    path = tmp_path / "waltz.mid"
    score.dump_midi(str(path))
    with pytest.raises(UserError, match="4/4"):
        list(generate_command(str(band_run), tmp_path / "out", GenerateRequest(n=1, bars=2, primer=path)))


def test_the_window_autoencoder_trains_in_the_loop_and_logs_each_instruments_latent_spread(tmp_path):
    config = load_config(shipped_recipe("debug/window-ae"), [f"data.source={MULTITRACK}"])
    run = train(config, tmp_path / "run")
    rows = [line.split(",") for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    valid = {name: float(value) for _, _, split, name, value in rows if split == "valid"}
    assert valid["recon"] > 0 and all(f"z_std/{g}" in valid for g in ("piano", "drums"))
    with pytest.raises(UserError, match="does not generate"):
        list(generate_command(str(run), tmp_path / "out", GenerateRequest(n=1, bars=1)))


def test_a_band_samples_whole_bars_with_and_without_feedback(band_run):
    from tunesmith.models.base import SamplePlan

    model = load_model(band_run).model
    for feedback in (False, True):
        model.config.feedback = feedback
        rolls = model.sample(SamplePlan(2, 3), torch.Generator().manual_seed(0))
        assert [r.shape for r in rolls] == [(5, 48, 128)] * 2 and rolls[0].dtype == np.uint8


def test_the_shipped_band_5_plays_a_band(tmp_path):
    (path,) = [p for p in generate_command("band-5", tmp_path, GenerateRequest(n=1, bars=4, seed=0))]
    score = read_midi(path)
    assert score.end() == 16 * score.ticks_per_quarter
    playing = [t for t in score.tracks if len(t.notes)]
    assert len(playing) >= 3 and any(t.is_drum for t in playing)


def test_decoding_tables_come_from_the_data_and_the_threshold_rule_gives_back_its_lines():
    """After one batch of a real song the velocity table holds the song's mean onset velocity per pitch, the
    thresholds give back as many units as the song has, and decoding its own planes returns its notes."""
    from tunesmith.models.band_decoding import DecodingStats

    rep = band_representation(build_model("band", make_config("band", {}, {})))
    roll = rep.encode(read_midi(MULTITRACK / "Funkytown.mid"))[:, :128]
    frames = _frames(roll)
    planes = roll_planes(frames)  # (1, 5, 2, 128, 128)
    stats = DecodingStats(window=128)
    noise = torch.rand(planes.shape, generator=torch.Generator().manual_seed(0))
    probs = torch.where(planes > 0, 0.7, 0.2) + 0.01 * noise
    stats.update(probs, planes, torch.ones(1, 128, dtype=torch.bool), frames)
    played = (planes[0, :, 1].sum((1, 2)) > 0).numpy()
    assert ((stats.thresholds[played] > 0.2) & (stats.thresholds[played] < 0.72)).all()
    group, pitch = np.argwhere(planes[0, :, 0].sum(1).numpy() > 0)[0]
    onset_velocities = roll[group][planes[0, group, 0, :, pitch].numpy() > 0, pitch]
    assert stats.velocity[group, pitch].item() == pytest.approx(onset_velocities.mean(), rel=1e-4)
    onset, sound = stats.decode(torch.logit(probs), "threshold", None)
    assert torch.equal(sound[0], planes[0, :, 1] > 0)
    rebuilt = velocity_rolls(onset.numpy(), sound.numpy(), stats.velocities(128).numpy())[0]
    again = roll_planes(_frames(rebuilt))[0]
    assert torch.equal(again[:, 1], planes[0, :, 1]) and (again[:, 0] >= planes[0, :, 0]).all()
    assert len(np.unique(rebuilt[rebuilt > 0])) > 5  # velocities vary, by instrument, pitch and step


def test_velocity_rolls_play_the_table_and_keep_back_to_back_notes_apart():
    onset = np.zeros((1, 5, 4, 128), bool)
    onset[0, 0, [0, 2], 60] = True
    sustain = np.zeros_like(onset)
    sustain[0, 0, :4, 60] = True
    table = np.full((5, 4, 128), 70.0)
    roll = velocity_rolls(onset, sustain, table)[0]
    assert roll[0, :, 60].tolist() == [70, 70, 71, 71]  # the second note is nudged, so it is its own note


def test_a_second_band_run_retrains_the_predictors_on_a_frozen_autoencoder(band_run, tmp_path):
    overrides = [f"data.source={MULTITRACK}", f"model.config.codec_from={band_run}", "model.config.train_codec=false",
                 "model.config.ae_steps=0", "trainer.max_steps=4"]
    run = train(load_config(shipped_recipe("debug/band"), overrides), tmp_path / "second")
    first, second = load_model(band_run).model, load_model(run).model
    for name, weight in first.codec.state_dict().items():
        assert torch.equal(weight, second.codec.state_dict()[name]), name
    assert not torch.equal(first.predictors.piano.linear.weight, second.predictors.piano.linear.weight)
    assert second.notes.batches.item() > 0 and (second.notes.thresholds != 0.5).any()
    assert second.notes.count_batches.item() > 0 and (second.notes.count_scale != 1).any()
    bad = [f"data.source={MULTITRACK}", f"model.config.codec_from={tmp_path / 'nowhere.ckpt'}"]
    with pytest.raises(UserError):
        train(load_config(shipped_recipe("debug/band"), bad), tmp_path / "third")


def test_the_expected_rule_keeps_as_many_units_as_the_probabilities_sum_to_in_each_window():
    from tunesmith.models.band_decoding import expected_units

    probs = torch.zeros(1, 5, 2, 16, 128)
    probs[0, 2, 1, :8, 40] = 0.5  # bass sounds for 4 units' worth in window 1, spread over 8 steps
    probs[0, 2, 1, 2, 40] = 0.9  # one step surer than the rest
    probs[0, 0, 0, 9, 60] = 0.4  # one onset below 1/2 in window 2: rounds to none
    scale = torch.ones(5, 2)
    chosen = expected_units(probs, 8, scale)
    assert chosen[0, 2, 1, :8, 40].sum() == round(0.5 * 7 + 0.9) and chosen[0, 2, 1, 2, 40]
    assert chosen.sum() == chosen[0, 2, 1, :8, 40].sum()
    scale[0, 0] = 2.0  # the count calibration doubles piano's onsets: 0.8 rounds to one
    assert expected_units(probs, 8, scale)[0, 0, 0, 9, 60]
