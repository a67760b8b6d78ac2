"""audio-vaegan's session-5 options: key shares matched as distributions (`share_weight`), a patch-level
discriminator (`d_patch`) and fine-tuning from a checkpoint (`trainer.init_from`); old configs keep their
behaviour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tunesmith.core.errors import UserError
from tunesmith.evaluation.audio_metrics import chunk_features
from tunesmith.models import make_config, model_class
from tunesmith.models.audio_vaegan_layers import key_shares, statistics_gap
from tunesmith.models.checkpoint import save_checkpoint
from tunesmith.training.init_from import initialise_from

NAME = "audio-vaegan"
RECIPES = Path(__file__).parents[1] / "src" / "tunesmith" / "recipes"


def build(**overrides):
    cls = model_class(NAME)
    torch.manual_seed(0)
    return cls(make_config(NAME, {**cls.debug_config(), **overrides}, cls.debug_dims()))


def test_key_shares_are_the_shares_the_metric_measures():
    rng = np.random.default_rng(0)
    keys = rng.random((3, 2, 6, 16)).astype(np.float32) ** 3
    shares = key_shares(torch.from_numpy(keys)).numpy()
    for chunk, row in zip(keys, shares, strict=True):
        np.testing.assert_allclose(row / 6, chunk_features(chunk, 0.02)["key_share"], rtol=1e-5)
    one_key = torch.zeros(1, 1, 4, 8)
    one_key[0, 0, 2] = 0.7
    assert key_shares(one_key)[0].tolist() == pytest.approx([0.0, 0.0, 4.0, 0.0], abs=1e-4)


def test_share_gap_sees_the_spread_of_shares_over_chunks():
    # two batches with the same mean share per key: every chunk even, or half lopsided one way, half the other
    even = torch.full((4, 1, 2, 8), 0.5)
    mixed = even.clone()
    mixed[:2, :, 0], mixed[2:, :, 1] = 0.9, 0.9
    same = statistics_gap({"share": key_shares(even)}, {"share": key_shares(even)}, "sorted")
    mean_only = statistics_gap({"share": key_shares(mixed)}, {"share": key_shares(even)}, "mean")
    spread = statistics_gap({"share": key_shares(mixed)}, {"share": key_shares(even)}, "sorted")
    assert float(same) == 0.0 and float(mean_only) < 1e-6 and float(spread) > 0.2


def test_share_weight_adds_its_term_and_zero_keeps_the_old_loss(one_thread):
    base = build(mode="continuation")
    weighted = build(mode="continuation", share_weight=3.0)
    batch = base.example_batch(4)
    base.eval(), weighted.eval()
    with torch.no_grad():
        torch.manual_seed(1)  # the same eps for both
        old = base.pretrain_generator_loss(batch)
        torch.manual_seed(1)
        new = weighted.pretrain_generator_loss(batch)
    assert "shares" not in old and float(new["shares"]) > 0
    assert float(new["loss"]) == pytest.approx(float(old["loss"]) + 3.0 * float(new["shares"]), rel=1e-5)


def test_patch_discriminator_gives_a_logit_per_patch(one_thread):
    model = build(mode="noise", d_patch=True, d_blocks=2)
    keys = model.example_batch(3)["target"]
    model.eval()  # spectral norm's power iteration moves the weights at every training-mode call
    logits = model._critic(keys, keys)
    assert logits.shape == (3, 1 + 16 // 4)  # the chunk's logit, then one per position of the last block
    # a patch logit depends on its own stretch of time only (and on no frame 8 or more frames away)
    changed = keys.clone()
    changed[..., 12:] = 1.0 - changed[..., 12:]
    other = model._critic(changed, changed)
    assert torch.equal(other[:, 1:2], logits[:, 1:2]) and not torch.equal(other[:, 4], logits[:, 4])
    model.train()
    assert model.discriminator_loss(model.example_batch(3))["loss"].isfinite()


def _save(model, path):
    save_checkpoint({"weights": model.state_dict(), "model": {"name": NAME}}, path)


def test_init_from_copies_the_weights_and_keeps_a_new_patch_head(tmp_path, one_thread):
    source = build(mode="both")
    for p in source.parameters():
        p.data.normal_()
    _save(source, tmp_path / "source.ckpt")
    model = build(mode="both", d_patch=True)
    fresh_head = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("discriminator.patch.")}
    counts = initialise_from(model, NAME, None, str(tmp_path / "source.ckpt"))
    state = model.state_dict()
    for name, value in source.state_dict().items():
        assert torch.equal(state[name], value), name
    assert fresh_head and all(torch.equal(state[k], v) for k, v in fresh_head.items())
    assert counts == {"copied": len(source.state_dict()), "grown": 0, "fresh": len(fresh_head)}


def test_init_from_a_checkpoint_of_another_shape_is_one_sentence(tmp_path, one_thread):
    _save(build(mode="both", width=4), tmp_path / "narrow.ckpt")
    with pytest.raises(UserError, match="only new vocabulary tokens") as error:
        initialise_from(build(mode="both"), NAME, None, str(tmp_path / "narrow.ckpt"))
    assert "\n" not in str(error.value)
    with pytest.raises(UserError, match="no checkpoint"):
        initialise_from(build(), NAME, None, str(tmp_path / "missing.ckpt"))


def test_a_session_4_config_builds_the_old_model(one_thread):
    """The session-4 recipe names none of the new fields: no share term, D's one logit per chunk."""
    recipe = yaml.safe_load((RECIPES / "audio-vaegan-bach.yaml").read_text())["model"]["config"]
    assert not {"share_weight", "d_patch"} & set(recipe)
    cls = model_class(NAME)
    small = {**recipe, **cls.debug_config(), "mode": "both"}
    model = cls(make_config(NAME, small, cls.debug_dims()))
    assert (model.config.share_weight, model.config.d_patch) == (0.0, False)
    assert model.discriminator.patch is None
    batch = model.example_batch(2)
    assert model._critic(batch["target"], batch["context"]).shape == (2,)
    assert "shares" not in model.pretrain_generator_loss(batch)


def test_the_shipped_checkpoint_loads_and_generates():
    from tunesmith.models.checkpoint import load_model

    model = load_model("audio-vaegan-bach").model
    c = model.config
    keys = model.sample_keys(2, None, torch.Generator().manual_seed(0))
    assert keys.shape == (2, c.channels, c.n_keys, c.chunk_frames) and keys.min() >= 0 and keys.max() <= 1
