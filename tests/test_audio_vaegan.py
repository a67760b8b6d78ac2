"""audio-vaegan: the networks, the losses, the phased GAN objective (models/audio_vaegan*.py,
training/gan_phases.py), then end to end on real recordings: data, train, generate."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from cli_run import run_cli
from tunesmith.core.errors import UserError
from tunesmith.data.audio import prepare_audio_data
from tunesmith.data.config import DataConfig
from tunesmith.evaluation.audio_metrics import chunk_features
from tunesmith.models import make_config, model_class
from tunesmith.models.audio_vaegan_layers import (
    MinibatchDiscrimination,
    all_statistics,
    key_statistics,
    music_statistics,
    n_statistics,
    statistics_gap,
    statistics_vector,
)
from tunesmith.training.config import OptimConfig
from tunesmith.training.gan_phases import PhasedAdversarialObjective

NAME = "audio-vaegan"


def build(**overrides):
    cls = model_class(NAME)
    torch.manual_seed(0)
    return cls(make_config(NAME, {**cls.debug_config(), **overrides}, cls.debug_dims()))


EXTENDED = {"extended_statistics": True, "stat_match": "sorted", "key_profile": True}


FINETUNE = {**EXTENDED, "share_weight": 20.0, "d_patch": True}


@pytest.mark.parametrize(("mode", "options"), [("noise", {}), ("continuation", {}), ("both", {}), ("both", EXTENDED),
                                               ("both", FINETUNE), ("noise", {"d_patch": True})])
def test_every_parameter_gets_a_gradient(mode, options, one_thread):
    model = build(mode=mode, noise_share=0.5, **options)
    batch = model.example_batch(4)
    (model.generator_loss(batch)["loss"] + model.discriminator_loss(batch)["loss"]).backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert dead == []
    assert set(model.generator_parameters()).isdisjoint(set(model.discriminator_parameters()))
    n_g, n_d = len(list(model.generator_parameters())), len(list(model.discriminator_parameters()))
    assert n_g + n_d == len(list(model.parameters()))


def test_without_envelope_there_is_no_envelope_parameter(one_thread):
    model = build(envelope=0)
    assert model.envelope is None and not any("envelope" in n for n, _ in model.named_parameters())


def test_output_shape_and_range(one_thread):
    model = build()
    c = model.config
    keys = model.sample_keys(3, None, torch.Generator().manual_seed(1))
    assert keys.shape == (3, c.channels, c.n_keys, c.chunk_frames) and keys.dtype == np.float32
    assert keys.min() >= 0 and keys.max() <= 1
    context = np.random.default_rng(0).random((c.channels, c.n_keys, c.chunk_frames)).astype(np.float32)
    assert model.sample_keys(2, context, torch.Generator().manual_seed(1)).shape == keys[:2].shape


def test_modes_refuse_the_wrong_input(one_thread):
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(UserError, match="continues audio only"):
        build(mode="continuation").sample_keys(1, None, gen)
    context = np.zeros((2, 6, 16), np.float32)
    with pytest.raises(UserError, match="from noise only"):
        build(mode="noise").sample_keys(1, context, gen)


def test_noise_items_reconstruct_an_unpaired_chunk_only_with_its_own_weight(one_thread):
    batch = build().example_batch(4)
    for weight in (0.0, 1.0):
        model = build(mode="noise", noise_reconstruction=weight)
        rec = model.pretrain_generator_loss(batch)["reconstruction"]
        assert (rec > 0) == (weight > 0)
    assert build(mode="continuation", noise_reconstruction=0.0).pretrain_generator_loss(batch)["reconstruction"] > 0


def test_config_errors_are_one_sentence():
    cls = model_class(NAME)
    for bad, match in (({"chunk_frames": 18}, "multiple of 4"), ({"mode": "x"}, "mode"),
                       ({"latent_dim": 6, "heads": 4}, "heads"), ({"d_blocks": 5}, "halves")):
        with pytest.raises(UserError, match=match):
            make_config(NAME, {**cls.debug_config(), **bad}, cls.debug_dims())


def test_wrong_chunk_length_names_the_fix(one_thread):
    model = build()
    batch = {k: v[..., :8] for k, v in model.example_batch(2).items()}
    with pytest.raises(UserError, match="data.window"):
        model.generator_loss(batch)


def test_key_statistics_golden_values():
    x = torch.zeros(2, 2, 3, 8)
    x[0, :, :, 4:] = 1.0  # item 0: every key sounds in the second half, both channels alike
    x[1, 0, 0] = torch.tensor([0.0, 1, 0, 1, 0, 1, 0, 1])  # item 1: one key alternating, left channel only
    stats = key_statistics(x, silence_level=0.05)
    assert stats["key_mean"].shape == (2, 6)
    assert torch.allclose(stats["key_mean"][0], torch.full((6,), 0.5))
    assert stats["silence"][0, 0] == pytest.approx(0.5, abs=1e-3)  # 4 of 8 frames silent
    assert stats["silence"][1, 0] == pytest.approx(0.5, abs=1e-3)
    assert stats["key_corr"][0, 0] == pytest.approx(1.0, abs=1e-4)  # neighbouring keys move together
    assert stats["channel_corr"][0, 0] == pytest.approx(1.0, abs=1e-4)
    assert stats["time_corr"][1, 0] == pytest.approx(-1 / 6, abs=1e-4)  # 1 alternating row of 6 (-1), constant rows 0


def test_music_statistics_count_the_onsets_the_metrics_count():
    rng = np.random.default_rng(0)
    x = np.full((1, 5, 100), 0.2, np.float32)  # quiet keys, then sharp note starts (0.2 -> 0.7) in two keys
    for key, starts in ((1, (10, 40, 70)), (3, (25, 60))):
        for start in starts:
            x[0, key, start : start + 12] = 0.7
    noisy = np.clip(x + rng.normal(0, 0.01, x.shape), 0, 1).astype(np.float32)  # jitter far below a rise
    stats = music_statistics(torch.from_numpy(noisy)[None])
    assert chunk_features(noisy, frame_seconds=1.0)["onset_rate"] * 100 == pytest.approx(5.0)  # the metric: 5
    assert stats["onset_rate"][0, 0].item() * 98 == pytest.approx(5.0, abs=0.1)  # per frame of 98 with a start
    assert stats["rise"].shape == (1, 5) and stats["rise"][0, 0] < 1e-3 < stats["rise"][0, 1]
    flat, peaked = torch.full((1, 1, 5, 4), 0.5), torch.zeros(1, 1, 5, 4)
    peaked[..., 2, :] = 0.5
    assert music_statistics(flat)["flatness"].item() == pytest.approx(1.0, abs=1e-3)
    assert music_statistics(peaked)["flatness"].item() < 0.05
    fade = music_statistics(torch.linspace(0, 1, 40).expand(1, 1, 5, 40))["loudness"][0]
    assert fade.shape == (10,) and torch.all(fade.diff() > 0) and fade[0] == pytest.approx(1.5 / 39, abs=1e-4)
    both = all_statistics(flat, 0.3, True)
    assert statistics_vector(both).shape == (1, n_statistics(5, True))
    assert statistics_vector(key_statistics(flat, 0.3)).shape == (1, n_statistics(5, False))


def test_sorted_statistics_match_the_spread_not_only_the_mean():
    real = {"s": torch.tensor([[0.0], [1.0], [0.0], [1.0]])}
    alike = {"s": torch.full((4, 1), 0.5)}  # same mean, no spread: a generator whose chunks all sound alike
    assert statistics_gap(alike, real, "mean").item() == pytest.approx(0.0)
    assert statistics_gap(alike, real, "sorted").item() == pytest.approx(0.5)
    shuffled = {"s": torch.tensor([[1.0], [0.0], [1.0], [0.0]])}
    assert statistics_gap(shuffled, real, "sorted").item() == pytest.approx(0.0)  # a distribution, not a pairing
    fewer = {"s": torch.tensor([[0.0], [1.0]])}
    assert statistics_gap(fewer, real, "sorted").item() == pytest.approx(0.0)


def test_minibatch_discrimination_marks_a_collapsed_batch():
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(4, 3, 2)
    same = layer(torch.ones(5, 4))[:, 4:]
    spread = layer(torch.randn(5, 4) * 100)[:, 4:]
    assert torch.allclose(same, torch.full_like(same, 4.0))  # each of 5 identical rows: 4 close neighbours
    assert spread.mean() < 1.0  # distinct rows: far apart


def snapshot(params) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


def changed(before, params) -> bool:
    return any(not torch.equal(a, p.detach()) for a, p in zip(before, params, strict=True))


def test_phases_pretrain_each_network_with_its_own_optimizer(one_thread):
    model = build(pretrain_g_steps=2, pretrain_d_steps=2, d_steps=1, g_steps=2)
    objective = PhasedAdversarialObjective(model, OptimConfig(lr=1e-2))
    batch = model.example_batch(4)
    g, d = list(model.generator_parameters()), list(model.discriminator_parameters())
    assert [objective.phase(s)[0] for s in range(9)] == ["pretrain_g"] * 2 + ["pretrain_d"] * 2 + \
        ["d", "g", "g", "d", "g"]
    for step in range(4):
        before_g, before_d = snapshot(g), snapshot(d)
        logs = objective.train_step(batch, step)
        pretrain_g = step < 2
        assert changed(before_g, g) == pretrain_g and changed(before_d, d) == (not pretrain_g)
    assert "pretrain_d_loss" in logs and "pretrain_g_reconstruction" in logs
    assert objective.optimizers["discriminator_pretrain"].state  # D's pretraining optimizer stepped
    assert not objective.optimizers["discriminator"].state


def test_accumulation_steps_once_per_group_of_batches(one_thread):
    model = build(pretrain_g_steps=0, pretrain_d_steps=0, accumulation=3, d_steps=1, g_steps=1)
    objective = PhasedAdversarialObjective(model, OptimConfig(lr=1e-2))
    assert [objective.phase(s) for s in range(4)] == [("d", True, False), ("d", False, False), ("d", False, True),
                                                     ("g", True, False)]
    d = list(model.discriminator_parameters())
    batch = model.example_batch(4)
    before = snapshot(d)
    objective.train_step(batch, 0)
    objective.train_step(batch, 1)
    assert not changed(before, d)  # gradients summed, no update yet
    objective.train_step(batch, 2)
    assert changed(before, d)


def test_continuation_learns_a_pair_and_validation_is_deterministic(one_thread):
    model = build(mode="continuation", pretrain_g_steps=60, dropout=0.0, kl_weight=0.0)
    objective = PhasedAdversarialObjective(model, OptimConfig(lr=1e-2))
    batch = model.example_batch(4)
    batch["target"] = torch.zeros_like(batch["target"])
    batch["target"][:, :, 2, 4:12] = 0.8  # one key held in the middle of the chunk
    model.eval()
    start = objective.valid_step(batch)
    assert start == objective.valid_step(batch)
    model.train()
    for step in range(60):
        objective.train_step(batch, step)
    model.eval()
    end = objective.valid_step(batch)
    assert end["reconstruction"] < 0.5 * start["reconstruction"]
    assert set(end) == {"loss", "reconstruction", "key_energy_gap", "silence_gap", "d_accuracy"}


# ---- end to end on real recordings: data kind "audio", `tunesmith train`, `tunesmith generate` ----------

FIXTURES = Path(__file__).parent / "fixtures" / "audio"  # two 6-s real excerpts (licences in README.md)
RECIPE = Path(__file__).parents[1] / "src" / "tunesmith" / "recipes" / "debug" / "audio-vaegan.yaml"


@pytest.fixture
def audio_folder(tmp_path, monkeypatch) -> Path:
    """The two real excerpts, a byte-identical copy of one under another name, a corrupt .wav and a text
    file; the key cache in tmp_path."""
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "recordings"
    (folder / "more").mkdir(parents=True)
    for path in FIXTURES.glob("*.ogg"):
        shutil.copy(path, folder / path.name)
    shutil.copy(next(FIXTURES.glob("*.ogg")), folder / "more" / "copy.ogg")
    (folder / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")
    (folder / "notes.txt").write_text("not audio")
    return folder


def debug_data(source: Path) -> DataConfig:
    recipe = yaml.safe_load(RECIPE.read_text())
    return DataConfig(**{**recipe["data"], "source": str(source)})


def test_audio_data_pairs_splits_dedups_skips_and_caches(audio_folder, monkeypatch):
    data = prepare_audio_data(debug_data(audio_folder))
    assert data.provenance["pieces"] == {"train": 1, "valid": 1, "test": 0}  # the copy is the same piece
    assert sum(data.provenance["skipped"].values()) == 1  # broken.wav, with its reason
    assert data.provenance["train_ids_sha256"] != data.provenance["valid_ids_sha256"]
    item = data.train[0]
    assert item["context"].shape == item["target"].shape == (1, 37, 100)
    assert item["context"].dtype == np.float32 and item["context"].min() >= 0 and item["target"].max() <= 1
    assert np.array_equal(data.train[0]["target"], data.train[2]["context"])  # stride 50: pair 2 starts 100 later
    assert len(data.train) == len(data.valid) == 3  # 300 frames: pairs at 0, 50, 100
    assert len(list((Path(os.environ["TUNESMITH_CACHE"]) / "audio-keys").glob("*.npy"))) == 2

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded audio although the keys are cached")

    monkeypatch.setattr("tunesmith.io.audio_input.read_audio", no_decoding)
    (audio_folder / "broken.wav").unlink()
    again = prepare_audio_data(debug_data(audio_folder))
    assert again.provenance["train_data_blake2b"] == data.provenance["train_data_blake2b"]


def test_an_ingested_audio_dataset_gives_the_pairs_its_files_give(audio_folder, tmp_path, monkeypatch, capsys):
    dataset = tmp_path / "dataset"
    code, _, err = run_cli(monkeypatch, capsys, "ingest", str(audio_folder), "--audio", "--out", str(dataset),
                           "--chunk-seconds", "2", "--sample-rate", "16000")  # resampled to 12 kHz when read
    assert code == 0, err
    from_files, from_dataset = prepare_audio_data(debug_data(audio_folder)), prepare_audio_data(debug_data(dataset))
    assert from_dataset.provenance["train_ids_sha256"] == from_files.provenance["train_ids_sha256"]
    assert len(from_dataset.train) == len(from_files.train)
    difference = np.abs(from_dataset.train[1]["target"] - from_files.train[1]["target"])
    assert np.median(difference) < 0.02  # int16 storage and two resamplings, nothing more


def test_a_folder_without_audio_is_one_sentence(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(UserError, match="holds no audio files"):
        prepare_audio_data(debug_data(tmp_path))


def test_train_then_generate_from_noise_and_from_a_primer(audio_folder, tmp_path, monkeypatch, capsys, one_thread):
    run = tmp_path / "run"
    code, _, err = run_cli(monkeypatch, capsys, "train", str(RECIPE), "--set", f"data.source={audio_folder}",
                           "--set", "trainer.max_epochs=10", "--set", "trainer.log_every=1", "--out", str(run))
    assert code == 0, err
    rows = (run / "metrics.csv").read_text()
    assert "pretrain_g_reconstruction" in rows and "pretrain_d_loss" in rows and "valid,reconstruction" in rows
    ckpt = str(run / "checkpoints" / "last.ckpt")
    code, _, err = run_cli(monkeypatch, capsys, "generate", ckpt, "--out", str(tmp_path / "noise"), "--n", "2")
    assert code == 0, err
    wav = tmp_path / "noise" / "sample_01.wav"
    info = sf.info(wav)
    assert (info.samplerate, info.channels, info.frames) == (12000, 1, 100 * 240)  # one 2-s chunk
    assert {p.name for p in (tmp_path / "noise").iterdir()} >= {"sample_02.mid", "sample_02.png", "generation.json"}
    primer = str(next(FIXTURES.glob("*.ogg")))
    code, _, err = run_cli(monkeypatch, capsys, "generate", ckpt, "--out", str(tmp_path / "cont"), "--n", "1",
                           "--primer", primer, "--steps", "150")
    assert code == 0, err
    assert sf.info(tmp_path / "cont" / "sample_01.wav").frames == 200 * 240  # 150 frames asked: two chunks
    assert sf.info(tmp_path / "cont" / "sample_01_primed.wav").frames == 300 * 240  # the primer's last chunk first
    sidecar = json.loads((tmp_path / "cont" / "generation.json").read_text())
    assert sidecar["model"]["name"] == "audio-vaegan" and sidecar["files"] == ["sample_01.mid"]


def test_wrong_primers_and_options_are_one_sentence(audio_folder, tmp_path, monkeypatch, capsys, one_thread):
    run = tmp_path / "run"
    assert run_cli(monkeypatch, capsys, "train", str(RECIPE), "--set", f"data.source={audio_folder}",
                   "--set", "trainer.max_steps=2", "--out", str(run))[0] == 0
    ckpt = str(run / "checkpoints" / "last.ckpt")
    short = tmp_path / "short.wav"
    sf.write(short, 0.5 * np.sin(np.linspace(0, 2000, 12000)), 12000)  # 1 s: shorter than a 2-s chunk
    midi = next((Path(__file__).parent / "fixtures" / "bach40").glob("*.mid"))
    for args, match in ((["--primer", str(midi)], "is a MIDI file"), (["--primer", str(short)], "lasts 1.0 s"),
                        (["--primer", str(tmp_path / "none.wav")], "does not exist"),
                        (["--top-k", "3"], "does not support --top-k")):
        code, _, err = run_cli(monkeypatch, capsys, "generate", ckpt, "--out", str(tmp_path / "x"), *args)
        assert code == 2 and match in err, err


def test_the_shipped_checkpoint_refuses_the_score_path_and_short_primers(tmp_path, monkeypatch, capsys):
    from tunesmith.generation.generate import GenerateRequest, generate_scores
    from tunesmith.models.checkpoint import load_model

    with pytest.raises(UserError, match="writes audio, not scores"):
        generate_scores(load_model("audio-vaegan-bach"), GenerateRequest(n=1))
    primer = str(next(FIXTURES.glob("*brahms*.ogg")))
    code, _, err = run_cli(monkeypatch, capsys, "generate", "audio-vaegan-bach", "--out", str(tmp_path), "--n", "1",
                           "--primer", primer)
    assert code == 2 and "lasts 6.0 s" in err  # the shipped model continues 10-s chunks
