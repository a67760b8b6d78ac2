"""The model registry: registered name -> model class (one file per family, contract in `base.py`).

Config fields that depend on the data (vocabulary size, padding id, ...) are filled from the
representation by `data_dims`; `make_config` checks every value's type and the family's rules.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tunesmith.core.errors import UserError
from tunesmith.models.audio_vaegan import AudioVAEGAN  # audio-vaegan
from tunesmith.models.band import BandModel  # band-5
from tunesmith.models.bar_autoencoder import BarAutoencoder
from tunesmith.models.base import MusicModel, check_types
from tunesmith.models.conv_vae import ConvVAE
from tunesmith.models.frame_nade import FrameNADE
from tunesmith.models.lstm_vae import LSTMVAE
from tunesmith.models.midinet import MidiNet
from tunesmith.models.nade_mixture import NADEMixture
from tunesmith.models.rnn import GRULanguageModel, RNNLanguageModel
from tunesmith.models.seq2seq import Seq2One, Seq2Seq
from tunesmith.models.token_gan import TokenGAN
from tunesmith.models.transformer import TransformerLM
from tunesmith.models.window_ae import WindowAE  # band-5
from tunesmith.representations.base import Representation

MODELS: dict[str, type[MusicModel]] = {
    "lstm": RNNLanguageModel,
    "gru": GRULanguageModel,
    "token-gan": TokenGAN,
    "seq2one": Seq2One,
    "seq2seq": Seq2Seq,
    "lstm-nade": FrameNADE,
    "lstm-nade-mix": NADEMixture,
    "midinet": MidiNet,
    "bar-autoencoder": BarAutoencoder,
    "lstm-vae": LSTMVAE,
    "conv-vae": ConvVAE,
    "transformer": TransformerLM,
    "window-ae": WindowAE,  # band-5
    "band": BandModel,  # band-5
    "audio-vaegan": AudioVAEGAN,  # audio-vaegan
}


def model_class(name: str) -> type[MusicModel]:
    if name not in MODELS:
        raise UserError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def data_dims(representation: Representation) -> dict[str, Any]:
    """Config values that come from the data, by the field names models use for them."""
    dims: dict[str, Any] = {}
    if getattr(representation, "is_tokens", False):
        dims.update(vocab_size=representation.vocab_size, pad_id=representation.pad_id)
    if hasattr(representation.config, "steps_per_bar"):  # bars
        dims["steps_per_bar"] = representation.config.steps_per_bar
    if representation.name == "multitrack":  # band-5: a multitrack model writes at the data's grid
        dims["steps_per_quarter"] = representation.config.steps_per_quarter  # band-5
    if hasattr(representation, "encode_audio"):  # audio-vaegan: pianokeys (channels, keys, frames)
        n_keys = len(representation.key_frequencies())  # audio-vaegan
        dims.update(channels=representation.config.channels, n_keys=n_keys)  # audio-vaegan
    return dims


def make_config(name: str, user: dict[str, Any], dims: dict[str, Any]) -> Any:
    """The family's Config: its defaults, then data dims, then the user's values (unknown keys: UserError)."""
    cls = model_class(name)
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    unknown = sorted(set(user) - fields)
    if unknown:
        raise UserError(f"model {name!r} has no config key {unknown[0]!r}; keys: {', '.join(sorted(fields))}")
    merged = {**cls.defaults(), **{k: v for k, v in dims.items() if k in fields}, **user}
    try:
        config = cls.Config(**merged)
    except (TypeError, ValueError) as error:  # a Config's own __post_init__ check
        raise UserError(f"model {name!r}: {error}") from None
    check_types(config)
    cls.validate_config(config)
    return config


def build_model(name: str, config: Any) -> MusicModel:
    """Instantiate a registered family from its Config (a validated dataclass instance, or a dict)."""
    cls = model_class(name)
    if isinstance(config, dict):
        config = make_config(name, config, {})
    return cls(config)
