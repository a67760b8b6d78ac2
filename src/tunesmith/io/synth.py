"""A small additive synthesizer in pure numpy: the fallback when FluidSynth or a soundfont is missing.

It is no substitute for a sampled General MIDI soundfont, but it lets anyone hear a score anywhere.
Pitched notes are a few harmonics under an ADSR envelope, with three voice families chosen by General
MIDI program (struck/plucked, organ, sustained); drum notes (percussion tracks) are a noise burst plus a
pitched thump. Note times come from the score's tempo map (`score.to("second")`), and the sustain
pedal (controller 64) lengthens notes as a piano's dampers would.

Speed: every note becomes a segment of samples; segments are rendered a chunk of about 256k samples
at a time in flat float32 arrays (no Python loop per note) and summed into the output with
`np.bincount`. Phases are 32-bit fixed-point integers that wrap around by themselves, which avoids a
slow float64 modulo per sample. Each drum sound is rendered once and copied for every hit, as a drum
machine plays samples. About 100x real time on one core for a solo piano piece.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from symusic import Score

CHUNK_SAMPLES = 1 << 18  # samples per vectorised step: arrays of 1 MB stay in cache
N_HARMONICS = 6
NYQUIST_MARGIN = 0.45  # harmonics at or above this fraction of the sample rate are dropped (aliasing)
LN_1000 = 6.9078  # ln(1000): an exponential falls by 60 dB after LN_1000 time constants
PHASE_SCALE = np.float32(2 * np.pi / 2**32)  # radians per unit of a uint32 phase

# Voice families by General MIDI program. Columns: attack (s), decay time constant (s; 0 means
# pitch-dependent, as a piano string: low notes ring longer), sustain level (0-1), release to
# -60 dB (s), overtone damping (1/s: harmonic k fades (k-1) times this much faster than the
# fundamental, which is what makes a struck string sound struck), amplitudes of harmonics 1..6.
VOICES = np.array(
    [
        # struck / plucked: pianos, chromatic percussion, guitars, basses, plucked ethnic
        [0.005, 0.0, 0.0, 0.25, 1.2, 1.0, 0.55, 0.30, 0.18, 0.10, 0.06],
        # organs
        [0.010, 0.05, 0.9, 0.08, 0.0, 1.0, 0.80, 0.50, 0.40, 0.25, 0.15],
        # sustained: strings, ensembles, brass, reeds, pipes, synths (a soft sawtooth)
        [0.060, 0.30, 0.75, 0.25, 0.0, 1.0, 0.50, 0.33, 0.25, 0.20, 0.16],
    ],
)

# Drum sounds. Columns: tone frequency (Hz, 0: no tone), extra frequency at the onset (Hz, it
# decays in SWEEP_S: the "boom" of a kick), tone decay time constant (s), noise level, noise decay
# time constant (s), high-pass amount of the noise (0: white, 1: first difference, bright as a cymbal).
SWEEP_S = 0.03
_KICK, _SNARE, _TOM, _HAT, _OPEN_HAT, _CRASH, _RIDE, _OTHER = range(8)
DRUM_SOUNDS = np.array(
    [
        [55.0, 95.0, 0.12, 0.10, 0.02, 0.0],
        [185.0, 30.0, 0.06, 0.70, 0.12, 0.3],
        [100.0, 40.0, 0.20, 0.15, 0.08, 0.0],
        [0.0, 0.0, 0.01, 0.60, 0.05, 1.0],
        [0.0, 0.0, 0.01, 0.60, 0.25, 1.0],
        [0.0, 0.0, 0.01, 0.50, 0.45, 1.0],
        [0.0, 0.0, 0.01, 0.35, 0.25, 1.0],
        [400.0, 0.0, 0.05, 0.40, 0.10, 0.5],
    ]
)
# Sound of each GM percussion key (35-81 are defined; anything else sounds as _OTHER).
_KINDS = {_KICK: (35, 36), _SNARE: (37, 38, 39, 40), _TOM: (41, 43, 45, 47, 48, 50), _HAT: (42, 44),
          _OPEN_HAT: (46,), _CRASH: (49, 52, 55, 57), _RIDE: (51, 53, 59)}
DRUM_KIND = np.full(128, _OTHER)
for _kind, _keys in _KINDS.items():
    DRUM_KIND[list(_keys)] = _kind
# Toms are tuned from the low floor tom (41) to the high tom (50).
TOM_HZ = np.zeros(128)
TOM_HZ[[41, 43, 45, 47, 48, 50]] = [80.0, 95.0, 110.0, 130.0, 150.0, 175.0]

Render = Callable[[np.ndarray, np.ndarray], np.ndarray]


def synthesize(score: Score, sample_rate: int = 44100, seed: int = 0) -> np.ndarray:
    """Render every note of `score` to mono float32 samples, shape (n,), not normalised.

    n covers the last note's end plus its release tail. `seed` fixes the drum noise, so the same
    score always renders to the same samples.
    """
    notes = notes_in_seconds(score)
    drum = notes["is_drum"]
    family = voice_family(notes["program"])
    length_s = np.where(drum, drum_length_s(notes["pitch"]), notes["duration"] + VOICES[family, 3])
    end_s = float((notes["start"] + length_s).max()) if len(length_s) else 0.0
    out = np.zeros(int(np.ceil(end_s * sample_rate)) + 1, dtype=np.float64)
    for index, voice in enumerate(VOICES):
        pick = ~drum & (family == index)
        prepared = _prepare_pitched({k: v[pick] for k, v in notes.items()}, voice, sample_rate)
        _mix(out, notes["start"][pick], length_s[pick], sample_rate,
             lambda local, i, p=prepared, v=voice: _render_pitched(local, i, p, v))
    _mix_drums(out, {k: v[drum] for k, v in notes.items()}, length_s[drum], sample_rate, seed)
    return out.astype(np.float32)


def notes_in_seconds(score: Score) -> dict[str, np.ndarray]:
    """All notes with `start`, `duration` (seconds, float64, sustain pedal applied), `pitch`,
    `velocity`, `program` and `is_drum`, as 1-D arrays of one length."""
    parts: dict[str, list] = {k: [np.zeros(0)] for k in ("start", "duration", "velocity")}
    parts.update(pitch=[np.zeros(0, np.int64)], program=[np.zeros(0, np.int64)], is_drum=[np.zeros(0, bool)])
    for track in score.to("second").tracks:
        a = track.notes.numpy()
        start = a["time"].astype(np.float64)
        end = start + a["duration"].astype(np.float64)
        if not track.is_drum:
            end = apply_sustain_pedal(end, track.controls.numpy())
        parts["start"].append(start)
        parts["duration"].append(end - start)
        parts["pitch"].append(a["pitch"].astype(np.int64))
        parts["velocity"].append(a["velocity"].astype(np.float64))
        parts["program"].append(np.full(len(start), track.program, np.int64))
        parts["is_drum"].append(np.full(len(start), track.is_drum))
    return {k: np.concatenate(v) for k, v in parts.items()}


def apply_sustain_pedal(end: np.ndarray, controls: dict[str, np.ndarray]) -> np.ndarray:
    """Note ends (seconds) held until the sustain pedal (CC 64, value >= 64) is lifted.

    A key released while the pedal is down keeps sounding until the pedal comes up; a pedal never
    lifted holds to the last note end of the track.
    """
    is_pedal = controls["number"] == 64
    if not is_pedal.any() or len(end) == 0:
        return end
    order = np.argsort(controls["time"][is_pedal], kind="stable")
    times = controls["time"][is_pedal][order].astype(np.float64)
    down = controls["value"][is_pedal][order] >= 64
    last_event = np.searchsorted(times, end, side="right") - 1  # pedal state when the key goes up
    held = (last_event >= 0) & down[np.maximum(last_event, 0)]
    lifts = np.append(times[~down], end.max())
    lift = lifts[np.searchsorted(lifts, end, side="left").clip(max=len(lifts) - 1)]
    return np.where(held, np.maximum(end, lift), end)


def voice_family(program: np.ndarray) -> np.ndarray:
    """Row of `VOICES` for each General MIDI program (0-127)."""
    organ = (program >= 16) & (program < 24)
    struck = (program < 16) | ((program >= 24) & (program < 40)) | ((program >= 104) & (program < 112))
    return np.where(struck, 0, np.where(organ, 1, 2))


def drum_length_s(pitch: np.ndarray) -> np.ndarray:
    """How long each drum hit rings (seconds): until its slowest part is 60 dB down."""
    sound = DRUM_SOUNDS[DRUM_KIND[pitch]]
    return np.maximum(sound[:, 2], sound[:, 4]) * LN_1000


def _mix(out: np.ndarray, start_s: np.ndarray, length_s: np.ndarray, sample_rate: int,
         render: Render) -> None:
    """Add note segments into `out` (samples): segment i starts at `start_s[i]`, lasts `length_s[i]` s.

    `render(local, i)` gets, for a chunk of segments laid end to end, each sample's offset from
    its note's onset (samples, int64) and its note index, and returns float32 samples.
    """
    if len(start_s) == 0:
        return
    first = np.round(start_s * sample_rate).astype(np.int64)
    length = np.maximum(1, np.round(length_s * sample_rate).astype(np.int64))
    length = np.minimum(length, len(out) - first)  # a tail may round one sample past the end
    order = np.argsort(first, kind="stable")  # a chunk of neighbouring notes touches a short span of out
    cum = np.cumsum(length[order])
    lo = 0
    while lo < len(order):
        done = cum[lo - 1] if lo else 0
        hi = max(lo + 1, int(np.searchsorted(cum, done + CHUNK_SAMPLES, side="right")))
        notes = order[lo:hi]
        lens = length[notes]
        index = np.repeat(notes, lens)
        local = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens)
        position = first[index] + local
        span_lo = position.min()
        out[span_lo : position.max() + 1] += np.bincount(position - span_lo, weights=render(local, index))
        lo = hi


def _phase(local: np.ndarray, increment: np.ndarray) -> np.ndarray:
    """Phase in radians [0, 2 pi), float32, of `local` samples at `increment` (uint32 cycles / 2**32).

    The uint32 product wraps modulo 2**32, which is exactly "modulo one cycle".
    """
    return (local.astype(np.uint32) * increment).astype(np.float32) * PHASE_SCALE


def _increment(freq_hz: np.ndarray, sample_rate: int) -> np.ndarray:
    """Per-sample phase step of each frequency as a uint32 fraction of a cycle."""
    return np.round(freq_hz / sample_rate * 2**32).astype(np.uint32)


def _prepare_pitched(notes: dict[str, np.ndarray], voice: np.ndarray, sample_rate: int) -> dict:
    """Per-note float32 parameters of pitched notes of one voice family."""
    freq = 440.0 * 2.0 ** ((notes["pitch"] - 69) / 12.0)  # Hz
    decay_s = voice[1] if voice[1] > 0 else np.clip(3.0 * np.sqrt(110.0 / freq), 0.4, 4.0)
    return {
        "increment": _increment(freq, sample_rate),
        "harmonics": np.floor(NYQUIST_MARGIN * sample_rate / freq).astype(np.int64),  # how many fit
        "decay_rate": (1.0 / np.broadcast_to(decay_s, freq.shape)).astype(np.float32),  # 1/s
        "duration": notes["duration"].astype(np.float32),
        # GM's recommended velocity curve, 40 log10(v / 127) dB, is amplitude (v / 127)^2.
        "gain": ((notes["velocity"] / 127.0) ** 2).astype(np.float32),
        "dt": np.float32(1.0 / sample_rate),
    }


def _render_pitched(local: np.ndarray, i: np.ndarray, p: dict, voice: np.ndarray) -> np.ndarray:
    """Samples of pitched notes: sum of harmonics x ADSR envelope x velocity gain."""
    t = local.astype(np.float32) * p["dt"]
    return _harmonics(local, t, i, p, voice) * _envelope(t, i, p, voice) * p["gain"][i]


def _envelope(t: np.ndarray, i: np.ndarray, p: dict, voice: np.ndarray) -> np.ndarray:
    """ADSR level (0-1) at `t` seconds after onset: linear attack, exponential decay towards the
    sustain level while the key is held, exponential release to -60 dB after it is let go."""
    attack, sustain, release = (np.float32(x) for x in (voice[0], voice[2], voice[3]))
    held = np.minimum(t, p["duration"][i])  # the held part of the envelope freezes at note-off
    decayed = np.maximum(held - attack, 0) * p["decay_rate"][i]
    released = np.maximum(t - p["duration"][i], 0) * (LN_1000 / release)
    if sustain == 0:  # struck strings: decay and release are one exponential
        level = np.exp(-(decayed + released))
    else:
        level = (sustain + (1 - sustain) * np.exp(-decayed)) * np.exp(-released)
    return level * np.minimum(held * (1 / attack), 1)


def _harmonics(local: np.ndarray, t: np.ndarray, i: np.ndarray, p: dict, voice: np.ndarray) -> np.ndarray:
    """Sum of harmonics 1..N_HARMONICS with the voice's amplitudes, overtones damped over time.

    sin(kx) comes from the Chebyshev recurrence sin((k+1)x) = 2 cos(x) sin(kx) - sin((k-1)x), so
    one sin and one cos per sample serve every harmonic.
    """
    x = _phase(local, p["increment"][i])
    cur, two_cos = np.sin(x), 2 * np.cos(x)
    prev = np.zeros_like(cur)
    damping = np.exp(-np.float32(voice[4]) * t) if voice[4] > 0 else None
    fits = p["harmonics"][i] if p["harmonics"].min() < N_HARMONICS else None  # only very high notes
    total = np.zeros_like(cur)
    fade = np.float32(1.0)
    for k in range(1, N_HARMONICS + 1):
        term = np.float32(voice[4 + k]) * cur * fade
        total += term if fits is None else term * (fits >= k)
        prev, cur = cur, two_cos * cur - prev
        if damping is not None:
            fade = fade * damping
    return total


def _mix_drums(out: np.ndarray, notes: dict[str, np.ndarray], length_s: np.ndarray, sample_rate: int,
               seed: int) -> None:
    """Add drum hits into `out`. A drum machine's way: each drum key present is rendered once
    (`drum_hit`) and every hit is a copy of it scaled by its velocity gain."""
    keys, which = np.unique(notes["pitch"], return_inverse=True)
    rng = np.random.default_rng(seed)
    hits = [drum_hit(int(key), sample_rate, rng) for key in keys]
    table = np.concatenate([np.zeros(1, np.float32), *hits])
    offset = (1 + np.cumsum([0] + [len(h) for h in hits]))[:-1][which]  # where each note's hit starts
    gain = ((notes["velocity"] / 127.0) ** 2).astype(np.float32)  # GM velocity curve, as for notes
    _mix(out, notes["start"], length_s, sample_rate, lambda local, i: table[offset[i] + local] * gain[i])


def drum_hit(key: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """One hit of GM percussion key `key` at full velocity: float32 samples (n,), n covering
    `drum_length_s` (plus one sample). Decaying noise plus, for kicks, snares and toms, a decaying
    tone swept down from `sound[1]` Hz above its pitch at the onset."""
    sound = DRUM_SOUNDS[DRUM_KIND[key]]
    n = int(np.round(drum_length_s(np.array([key]))[0] * sample_rate)) + 1
    t = np.arange(n) / sample_rate  # seconds
    white = rng.standard_normal(n)
    noise = (1 - sound[5]) * white + sound[5] * np.diff(white, prepend=0.0) / 2  # difference: high-pass
    total = sound[3] * noise * np.exp(-t / sound[4])
    tone_hz = TOM_HZ[key] or sound[0]
    if tone_hz > 0:
        cycles = tone_hz * t + sound[1] * SWEEP_S * (1 - np.exp(-t / SWEEP_S))  # integral of frequency
        total += np.sin(2 * np.pi * cycles) * np.exp(-t / sound[2])
    return total.astype(np.float32)
