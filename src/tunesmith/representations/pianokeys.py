"""`pianokeys`: audio as the energy of each piano key's frequency band per 20-ms frame (MusiGAN's
"piano keys", seed 002), with a click-free inverse. An audio representation, not a symbolic one.

Array layout: float32 (channels, n_keys, n_frames), values in [0, 1].
    channels   1 (mono) or 2 (stereo), `Config.channels`
    n_keys     highest_key - lowest_key + 1; row i is piano key lowest_key + i (1-based: A0 = 1,
               A4 = 49 = 440 Hz, C8 = 88; MIDI pitch = key + 20). Default: all 88 keys (the seed: 33).
    n_frames   one per `frame_seconds` (20 ms: 240 samples at 12 kHz); a 10-s chunk has 500.

Value of key k in frame m: A = sqrt(2 * mean over the frame of y_k(t)^2), where y_k is the signal
through key k's Gaussian band filter (peak gain 1 at the key's frequency): the amplitude of a sine at
the key's frequency that would give the same energy (a full-scale sine at A4 gives A = 1 at key 49).
`scale` maps A to [0, 1]:
    "db"      v = clip(1 + 20 log10(A) / db_range, 0, 1): 1 is a full-scale sine, 0 is db_range dB
              below it or quieter. The default: a GAN's sigmoid output spreads over the range, and
              the inverse maps a small error to a small loudness change.
    "linear"  v = clip(A, 0, 1), as the seed's values before it divided by their maximum.
Both are inverted by `amplitudes` (values at 0 become silence).

Band filters (`kind`):
    "stft"  the seed's Gaussian masks of fixed width sigma_hz (12.5 Hz) around each key: the Gabor
            STFT (Gaussian window, sigma_t = 1 / (2 pi sigma_hz) = 12.7 ms) read at each key's
            frequency: the seed's values (within 3e-6) from one shared FFT (`band_energies`), 26x cheaper. A
            fixed width resolves the low keys poorly (A0-A1 are 1.6-3.3 Hz apart) and smears high
            keys little: kept because it is the seed's, and its 12.7-ms time resolution suits
            20-ms frames at every key.
    "cqt"   constant-Q Gaussian masks: sigma_k = f_k (2^(sigma_semitones / 12) - 1), half a semitone
            by default, so every key is resolved from its neighbours at any pitch (at the price of
            time resolution in the bass: 0.2 s at A0). The same engine, numpy only.

The seed's faults, fixed: its inverse restarted every sine each frame (a 50-Hz buzz; ours runs each
sine's phase on and interpolates amplitudes, `pianokeys_dsp.synthesize_keys`, and first unmixes the
neighbours a tone lights, `unmix`); it synthesised 36 keys where training used 33 (one config here,
saved in checkpoints by `to_dict`, serves both ways); its full-length FFT is circular, so the end of
a chunk heard its beginning (`encode_audio` pads with silence first).

Symbolic interface (the registry's): `encode(score)` plays the score through the built-in
synthesizer (`io.synth`) at `sample_rate`, peak-normalised to -1 dBFS, then `encode_audio`;
`decode(array)` transcribes (`pianokeys_transcribe.keys_to_score`: onset picking, pitch = the key's
MIDI number). This round trip is approximate, so pianokeys declares `is_audio` and is held to an
audio law in its own tests instead of the registry's exact symbolic one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from symusic import Score

from tunesmith.core.errors import UserError
from tunesmith.representations.base import Representation
from tunesmith.representations.pianokeys_dsp import band_energies, key_frequency, synthesize_keys, unmix

KINDS = ("stft", "cqt")
SCALES = ("db", "linear")
ENCODE_PEAK_DBFS = -1.0  # scores are rendered to this peak before encoding (as `tunesmith render` does)


@dataclass(frozen=True)
class PianoKeysConfig:
    """sample_rate (Hz) of the audio encoded and synthesised: 12 kHz as the seed, whose Nyquist
    (6 kHz) is above the highest key (C8, 4,186 Hz) with room for its mask; frame_seconds (20 ms, the
    seed's); lowest_key / highest_key 1-based piano keys (inclusive); kind, sigma_hz,
    sigma_semitones, scale, db_range: see the module docstring; channels 1 or 2 (the seed: 2);
    unmix: the inverse solves for the sines that reproduce the key values (`pianokeys_dsp.unmix`)
    instead of playing every key's value, which would turn each tone into a cluster of neighbours;
    tempo_qpm and tpq: the grid of transcribed scores."""

    sample_rate: int = 12000
    frame_seconds: float = 0.02
    lowest_key: int = 1
    highest_key: int = 88
    kind: str = "stft"
    sigma_hz: float = 12.5
    sigma_semitones: float = 0.5
    scale: str = "db"
    db_range: float = 80.0
    channels: int = 2
    unmix: bool = True
    tempo_qpm: float = 120.0
    tpq: int = 480

    def __post_init__(self) -> None:
        problem = _config_problem(self)
        if problem:
            raise UserError(f"bad pianokeys config: {problem}")

    @property
    def frame(self) -> int:
        """Samples per frame."""
        return int(round(self.frame_seconds * self.sample_rate))


def _config_problem(c: PianoKeysConfig) -> str | None:
    """One sentence on what is wrong with a config, or None."""
    if c.kind not in KINDS or c.scale not in SCALES:
        return f"kind must be one of {KINDS} and scale one of {SCALES}, not {c.kind!r} and {c.scale!r}"
    if not (1 <= c.lowest_key <= c.highest_key <= 108):
        return f"keys must satisfy 1 <= lowest_key <= highest_key <= 108, not {c.lowest_key}..{c.highest_key}"
    if c.channels not in (1, 2):
        return f"channels must be 1 or 2, not {c.channels}"
    if not (1000 <= c.sample_rate <= 192_000) or not (0.001 <= c.frame_seconds <= 1.0):
        return "sample_rate must be 1000-192000 Hz and frame_seconds 0.001-1"
    if not (c.sigma_hz > 0 and 0 < c.sigma_semitones <= 12 and c.db_range > 0 and c.tempo_qpm > 0 and c.tpq > 0):
        return "sigma_hz, sigma_semitones (at most 12), db_range, tempo_qpm and tpq must be positive"
    top = float(key_frequency(c.highest_key))
    width = c.sigma_hz if c.kind == "stft" else top * (2 ** (c.sigma_semitones / 12) - 1)
    if top + 3 * width >= c.sample_rate / 2:
        return (f"sample_rate {c.sample_rate} Hz cannot hold key {c.highest_key} ({top:.0f} Hz) and its "
                f"band: its Nyquist frequency must lie above {top + 3 * width:.0f} Hz")
    return None


class PianoKeysRepresentation(Representation):
    """Audio <-> (channels, n_keys, n_frames) key-band energies in [0, 1]; see the module docstring."""

    name: ClassVar[str] = "pianokeys"
    Config: ClassVar[type] = PianoKeysConfig
    is_audio: ClassVar[bool] = True  # arrays hold sound, not notes: the symbolic law does not apply
    note_fields: ClassVar[tuple[str, ...]] = ("pitch", "start")

    # ----- audio

    def key_frequencies(self) -> np.ndarray:
        """Centre frequency in Hz of each row, float64 (n_keys,)."""
        c = self.config
        return key_frequency(np.arange(c.lowest_key, c.highest_key + 1))

    def key_sigmas(self) -> np.ndarray:
        """Standard deviation in Hz of each row's Gaussian mask, float64 (n_keys,)."""
        freqs = self.key_frequencies()
        if self.config.kind == "stft":
            return np.full(len(freqs), self.config.sigma_hz)
        return freqs * (2 ** (self.config.sigma_semitones / 12) - 1)

    def n_frames(self, n_samples: int) -> int:
        """Frames `encode_audio` makes of `n_samples` samples (a partial last frame is dropped)."""
        return n_samples // self.config.frame

    def encode_audio(self, samples: np.ndarray) -> np.ndarray:
        """(channels, n) float samples at `sample_rate` in [-1, 1] -> float32 (channels, n_keys,
        n // frame) in [0, 1]. `samples` must have `config.channels` rows (`io.audio_input.to_channels`)."""
        samples = np.asarray(samples)
        if samples.ndim != 2 or samples.shape[0] != self.config.channels:
            raise UserError(f"pianokeys expects samples of shape ({self.config.channels}, n), not {samples.shape}")
        if not np.isfinite(samples).all():
            raise UserError("pianokeys cannot encode samples that are not finite (NaN or infinity)")
        freqs, sigmas = self.key_frequencies(), self.key_sigmas()
        c = self.config
        n_frames = self.n_frames(samples.shape[1])
        # The band filters are circular over the transform (as the seed's were), so the end of a chunk
        # would hear its beginning: silence of 5 time-sigmas (whole frames) on each side prevents it.
        pad = int(np.ceil(5 / (2 * np.pi * sigmas.min()) * c.sample_rate / c.frame)) * c.frame
        padded = np.pad(samples[:, : n_frames * c.frame], ((0, 0), (pad, pad)))
        energy = np.stack([band_energies(ch, c.sample_rate, c.frame, freqs, sigmas) for ch in padded])
        return self.values(np.sqrt(2.0 * energy[:, :, pad // c.frame: pad // c.frame + n_frames]))

    def decode_audio(self, keys: np.ndarray) -> np.ndarray:
        """(channels, n_keys, n_frames) values in [0, 1] -> float32 (channels, n_frames * frame) samples
        at `sample_rate`: one phase-continuous sine per key, its amplitude interpolated sample by
        sample between frame centres (no frame clicks). Scaled down to a peak of 1 only when louder."""
        keys = self._check_keys(keys)
        c = self.config
        freqs, amplitude = self.key_frequencies(), self.amplitudes(keys)
        if c.unmix:
            amplitude = np.stack([unmix(a, freqs, self.key_sigmas()) for a in amplitude])
        audio = np.stack([synthesize_keys(a, freqs, c.sample_rate, c.frame) for a in amplitude])
        peak = float(np.abs(audio).max(initial=0.0))
        return (audio / peak if peak > 1.0 else audio).astype(np.float32)

    def values(self, amplitude: np.ndarray) -> np.ndarray:
        """Sine amplitudes (any shape, >= 0) -> float32 values in [0, 1] (the `scale`)."""
        if self.config.scale == "linear":
            return np.clip(amplitude, 0.0, 1.0).astype(np.float32)
        with np.errstate(divide="ignore"):
            level = 20 * np.log10(amplitude)
        return np.clip(1.0 + level / self.config.db_range, 0.0, 1.0).astype(np.float32)

    def amplitudes(self, keys: np.ndarray) -> np.ndarray:
        """Inverse of `values`: values in [0, 1] -> float64 sine amplitudes; 0 stays 0 (silence)."""
        keys = np.clip(np.asarray(keys, dtype=np.float64), 0.0, 1.0)
        if self.config.scale == "linear":
            return keys
        return np.where(keys > 0, 10 ** ((keys - 1.0) * self.config.db_range / 20), 0.0)

    def _check_keys(self, keys: np.ndarray) -> np.ndarray:
        keys = np.asarray(keys)
        n_keys = self.config.highest_key - self.config.lowest_key + 1
        if keys.ndim != 3 or keys.shape[:2] != (self.config.channels, n_keys):
            raise UserError(f"pianokeys expects arrays of shape ({self.config.channels}, {n_keys}, frames), "
                            f"not {keys.shape}")
        if not np.isfinite(keys).all():
            raise UserError("pianokeys cannot decode values that are not finite (NaN or infinity)")
        return keys

    # ----- the registry's symbolic interface

    def encode(self, score: Score) -> np.ndarray:
        """The score heard through the built-in synthesizer, then `encode_audio` (see the module docstring)."""
        from tunesmith.io.audio import normalize_peak
        from tunesmith.io.synth import synthesize

        samples = normalize_peak(synthesize(score, self.config.sample_rate), ENCODE_PEAK_DBFS)
        return self.encode_audio(np.repeat(samples[None, :], self.config.channels, axis=0))

    def decode(self, array: np.ndarray) -> Score:
        """A transcription of the key energies (`pianokeys_transcribe.keys_to_score`) at `tempo_qpm`."""
        from tunesmith.representations.pianokeys_transcribe import keys_to_score

        return keys_to_score(self._check_keys(array), self)

    def canonical(self, score: Score) -> Score:
        """What a transcription can hold of `score`: its pitched notes within the key range that last
        at least two frames, one piano track at `tempo_qpm`, onsets on the frame grid (approximate:
        the audio law compares pitches and onsets within a frame, not note for note)."""
        from tunesmith.representations.pianokeys_transcribe import canonical_score

        return canonical_score(score, self)

    def span(self, array: np.ndarray) -> int:
        """Ticks (at `tpq` and `tempo_qpm`) that `array` covers: its frames' duration."""
        seconds = np.shape(array)[-1] * self.config.frame / self.config.sample_rate
        return int(round(seconds * self.config.tempo_qpm / 60 * self.config.tpq))
