"""Signal processing behind `pianokeys`: key-band energies, the additive inverse, and click measures.

**Key-band energies as the seed defined them, computed far more cheaply.** The seed (MusiGAN's
`convert_to_piano.py`) computes, for every key k, the band signal y_k = irfft(rfft(x) * G_k), G_k a
Gaussian mask of width sigma_k (Hz) centred on the key's frequency f_k, then the mean square of y_k
over each frame of L samples. That is two full-length FFTs per key. `band_energies` gives the same
numbers from ONE shared full-length rFFT: the masked spectrum of a key is nonzero only within
N_SIGMA sigma of f_k (2D + 1 bins), so its analytic band signal a_k = e^{i w_k t} b_k(t) has a
baseband part b_k of bandwidth D bins, known exactly at M points from one inverse FFT of size M
(M >= 2D + 1, a multiple of the frame count). Then y_k^2 = (|b_k|^2 + Re(e^{2 i w_k t} b_k^2)) / 2,
and both terms are (almost: see LAG_SIGMA) band-limited, so their sums over each frame of L samples
follow from their M-point spectra times the frame's Dirichlet kernel, folded onto the frame count
(one small inverse FFT). The only approximations are the mask's tails beyond N_SIGMA sigma and
LAG_SIGMA: relative differences below 1e-4 from the seed's values wherever they are above 1e-6 of
the chunk's loudest (tests/test_pianokeys.py). This is the
Gabor STFT of the signal (a Gaussian window of sigma_t = 1 / (2 pi sigma) seconds) read at each key's
frequency: an ordinary STFT with 20-ms frames has 50-Hz bins and cannot resolve 12.5-Hz masks, so
its values differ (benchmarks/audio_representation.py measures both).

**Inverse without frame clicks.** `synthesize_keys` plays one sine per key whose phase runs on
across frames and whose amplitude is interpolated linearly, sample by sample, between frame centres.
The seed restarted every sine at each frame (t reset to 0 every 20 ms): a discontinuity 50 times a
second, heard as a 50-Hz buzz; `seed_style_inverse` reproduces it for comparison and
`frame_click_ratio` measures the energy it puts at 50 Hz and its harmonics.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

# Mask bins kept on each side of a key, in sigmas: the mask's amplitude there is exp(-18) = 1.5e-8.
N_SIGMA = 6.0
# |b|^2 and b^2 are only approximately band-limited to +-LAG_SIGMA sigma: between two components
# under the mask, the spectrum at lag e is at most exp(-e^2 / (4 sigma^2)) of the band's energy
# (exp(-16) = 1e-7 at 8 sigma). Transforms of 2 x 8 sigma points (2,500 for a 10-s chunk's 12.5-Hz
# bands, where exactness would need 4 D + 1 = 3,001) measured: within 3e-6 of the seed's values
# above 1e-6 of the loudest; at 7.5 sigma (2,000 points) a loud tone at the mask's edge left 2e-3.
LAG_SIGMA = 8.0
INAUDIBLE = 1e-5  # sine amplitude (-100 dB re full scale) below which a key is never synthesised
# Keys are transformed in batches whose working arrays (64 bytes per key and transform point) fit
# this budget: small enough to stay in cache (all 88 keys of a 10-s chunk at once ran 2.6x slower
# than batches of 26) and to bound memory on long signals.
BATCH_BYTES = 4 << 20


def key_frequency(key: np.ndarray | int) -> np.ndarray:
    """Frequency in Hz of 1-based piano key numbers (A0 = 1, A4 = 49 = 440 Hz, C8 = 88), equal temperament."""
    return 440.0 * 2.0 ** ((np.asarray(key, dtype=np.float64) - 49.0) / 12.0)


def band_energies(x: np.ndarray, sample_rate: int, frame: int, freqs: np.ndarray,
                  sigmas: np.ndarray) -> np.ndarray:
    """Mean square of each key's Gaussian band signal per frame: float64 (n_keys, n_frames).

    x: samples (n,); frame: samples per frame L; freqs, sigmas: (n_keys,) in Hz. n_frames = n // L;
    a partial last frame is dropped, as is everything after it (the transform covers N = n_frames L
    samples, like the seed's 10-s chunk of 500 frames). Equal to `seed_band_energies` (see the module
    docstring).
    """
    freqs, sigmas = np.asarray(freqs, np.float64), np.asarray(sigmas, np.float64)
    n_frames = len(x) // frame
    n = n_frames * frame
    out = np.zeros((len(freqs), n_frames))
    if n_frames == 0:
        return out
    spectrum = np.fft.rfft(np.asarray(x[:n], dtype=np.float64))
    sizes = [_transform_size(int(max(2 * d + 1, 2 * LAG_SIGMA * s * n / sample_rate + 1)), n_frames)
             for d, s in zip(_half_widths(sigmas, n, sample_rate), sigmas, strict=True)]
    for size in sorted(set(sizes)):
        keys = np.flatnonzero(np.array(sizes) == size)
        batch = max(1, BATCH_BYTES // (64 * size))
        for start in range(0, len(keys), batch):
            part = keys[start: start + batch]
            if 2 * size >= n:  # a band about as wide as the whole spectrum: the seed's way is cheaper
                out[part] = seed_band_energies(x[:n], sample_rate, frame, freqs[part], sigmas[part])
            else:
                out[part] = _batch(spectrum, n, sample_rate, frame, size, freqs[part], sigmas[part])
    return np.maximum(out, 0.0)  # rounding can leave -1e-20 where a band is empty


def _half_widths(sigmas: np.ndarray, n: int, sample_rate: int) -> np.ndarray:
    """D per key: mask bins kept on each side of the centre bin."""
    return np.ceil(N_SIGMA * np.asarray(sigmas) * n / sample_rate).astype(np.int64)


def _transform_size(least: int, n_frames: int) -> int:
    """The smallest multiple of n_frames at or above `least` whose quotient is 2^a 3^b 5^c (so frame
    starts fall on the transform's grid and its FFT stays fast)."""
    quotient = -(-least // n_frames)
    while not _smooth(quotient):
        quotient += 1
    return quotient * n_frames


def _smooth(k: int) -> bool:
    for p in (2, 3, 5):
        while k % p == 0:
            k //= p
    return k == 1


def _batch(spectrum: np.ndarray, n: int, sample_rate: int, frame: int, m: int,
           freqs: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """Frame mean squares of a few keys through the baseband path (module docstring), with
    transforms of m >= 2 D + 1 points (and >= 16 sigma, see LAG_SIGMA), a multiple of the frame count."""
    plan = _plan(n, sample_rate, frame, m, tuple(freqs.tolist()), tuple(sigmas.tolist()))
    n_frames = n // frame
    base = np.zeros((len(freqs), m), np.complex128)
    base[:, plan.columns] = spectrum[plan.bins] * plan.mask
    b = np.fft.ifft(base, axis=1)  # b_k at t = j N / m: exact, the band has 2D + 1 <= m bins
    half = np.fft.rfft(b.real ** 2 + b.imag ** 2, axis=1)  # |b|^2 is real: half its spectrum, mirrored
    power = np.concatenate([half, np.conj(half[:, (m + 1) // 2 - 1: 0: -1])], axis=1) * plan.power_kernel
    swing = np.fft.fft(b * b, axis=1) * plan.swing_kernel
    folds = m // n_frames  # e and e + k n_frames put the same phase on every frame start: fold them
    power = power.reshape(-1, folds, n_frames).sum(axis=1)
    swing = swing.reshape(-1, folds, n_frames).sum(axis=1)
    power += np.take_along_axis(swing, plan.shift, axis=1)  # frequencies e + 2 j0: shifted by 2 j0
    return np.fft.ifft(power, axis=1).real * (n_frames / m) / (2.0 * frame)


class _Plan(NamedTuple):
    bins: np.ndarray  # (keys, 2D + 1) rfft bins of each key's band
    mask: np.ndarray  # (keys, 2D + 1) Gaussian mask x analytic-signal weight x transform scale
    columns: np.ndarray  # (2D + 1,) where the band's offsets go in the m-point baseband spectrum
    power_kernel: np.ndarray  # (m,) frame-sum kernel of |b|^2
    swing_kernel: np.ndarray  # (keys, m) frame-sum kernel of b^2, at frequencies e + 2 j0
    shift: np.ndarray  # (keys, n_frames) fold positions of the swing term


@functools.lru_cache(maxsize=64)
def _plan(n: int, sample_rate: int, frame: int, m: int, freqs: tuple, sigmas: tuple) -> _Plan:
    """What depends only on the chunk length and the keys, computed once for chunks of one length."""
    freqs, sigmas = np.array(freqs), np.array(sigmas)
    half = int(_half_widths(sigmas, n, sample_rate).max())
    centre = np.rint(freqs * n / sample_rate).astype(np.int64)
    offsets = np.arange(-half, half + 1)
    bins = centre[:, None] + offsets
    inside = (bins >= 0) & (bins <= n // 2)
    mask = np.exp(-0.5 * ((bins * (sample_rate / n) - freqs[:, None]) / sigmas[:, None]) ** 2) * inside
    # Analytic signal: positive bins count twice, DC and Nyquist once (they are their own mirror).
    mask *= np.where((bins == 0) | (bins * 2 == n), 1.0, 2.0) * (m / n)
    signed = np.fft.fftfreq(m, 1.0 / m).astype(np.int64)  # spectral index e of each FFT bin
    lo = int(2 * centre.min() - m)
    table = _dirichlet(np.arange(lo, int(2 * centre.max() + m) + 1), frame, n)
    n_frames = n // frame
    shift = (np.arange(n_frames)[None, :] - 2 * centre[:, None]) % n_frames
    return _Plan(np.clip(bins, 0, n // 2), mask, offsets % m, _dirichlet(signed, frame, n),
                 table[signed[None, :] + 2 * centre[:, None] - lo], shift)


def _dirichlet(nu: np.ndarray, frame: int, n: int) -> np.ndarray:
    """sum_{s < L} exp(2 pi i nu s / N) for integer frequencies nu (bins of the N-point transform):
    exp(i pi nu (L - 1) / N) sin(pi nu L / N) / sin(pi nu / N), and L where nu = 0 (mod N)."""
    zero = nu % n == 0
    angle = np.pi * nu / n
    ratio = np.where(zero, float(frame), np.sin(angle * frame) / np.where(zero, 1.0, np.sin(angle)))
    return ratio * np.exp(1j * angle * (frame - 1))


def seed_band_energies(x: np.ndarray, sample_rate: int, frame: int, freqs: np.ndarray,
                       sigmas: np.ndarray) -> np.ndarray:
    """The seed's method, as a reference: per key, rfft of the whole signal, Gaussian mask, irfft,
    mean square per frame. float64 (n_keys, n // frame). Two full-length FFTs per key."""
    n_frames = len(x) // frame
    n = n_frames * frame
    x = np.asarray(x[:n], dtype=np.float64)
    bin_hz = np.fft.rfftfreq(n, 1.0 / sample_rate)
    out = np.zeros((len(freqs), n_frames))
    for i, (f, sigma) in enumerate(zip(freqs, sigmas, strict=True)):
        band = np.fft.irfft(np.fft.rfft(x) * np.exp(-0.5 * ((bin_hz - f) / sigma) ** 2), n)
        out[i] = (band.reshape(n_frames, frame) ** 2).mean(axis=1)
    return out


def synthesize_keys(amplitude: np.ndarray, freqs: np.ndarray, sample_rate: int, frame: int,
                    block: int = 1 << 15) -> np.ndarray:
    """Additive inverse: float64 (n_frames * frame,) = sum over keys of A_k(t) sin(2 pi f_k t + phi_k).

    amplitude: (n_keys, n_frames) peak amplitudes of each key's sine per frame; A_k(t) interpolates them
    linearly between frame centres (held before the first and after the last), so neither amplitude
    nor phase jumps at frame edges. phi_k is a fixed pseudo-random phase per key (all sines in phase
    at t = 0 would pile up into one loud spike). Keys never above INAUDIBLE, or 80 dB below the
    loudest key, are left out (the unmixing leaves such crumbs); time goes in blocks.
    """
    n_keys, n_frames = amplitude.shape
    n = n_frames * frame
    out = np.zeros(n)
    peaks = amplitude.max(axis=1, initial=0.0)
    live = np.flatnonzero(peaks > max(INAUDIBLE, peaks.max(initial=0.0) * 1e-4))
    if n == 0 or len(live) == 0:
        return out
    phase0 = np.random.default_rng(0).uniform(0, 2 * np.pi, n_keys)[live, None]
    cycles = (freqs[live] / sample_rate)[:, None]
    centres = (np.arange(n_frames) + 0.5) * frame
    amp = amplitude[live]
    for start in range(0, n, block):
        t = np.arange(start, min(start + block, n))
        envelope = np.stack([np.interp(t, centres, a) for a in amp])
        # (cycles * t) mod 1 in float64 keeps the phase exact for hours of audio.
        out[start: start + len(t)] = (envelope * np.sin(2 * np.pi * ((cycles * t) % 1.0) + phase0)).sum(axis=0)
    return out


def unmix(amplitude: np.ndarray, freqs: np.ndarray, sigmas: np.ndarray, iterations: int = 100) -> np.ndarray:
    """Sine amplitudes (n_keys, n_frames) whose key energies reproduce `amplitude` (the same shape).

    One sine at key k, amplitude A_k, shows in key j's band with amplitude A_k G_j(f_k) (G_j: key j's
    mask), so a tone lights its neighbours too, and playing every key's value back would turn one
    tone into a cluster (and re-encode louder). With cross terms neglected (sines of different keys
    average out over a frame), key energies are linear in the powers p_k = A_k^2: a = H p with
    H_jk = G_j(f_k)^2. This solves for p >= 0 by multiplicative updates (nonnegative least squares,
    Lee and Seung), which never make a power negative; 100 steps of an (n_keys x n_keys) product.
    """
    target = np.asarray(amplitude, np.float64) ** 2
    h = np.exp(-(((freqs[None, :] - freqs[:, None]) / sigmas[:, None]) ** 2))
    power = target.copy()
    hth, htt = h.T @ h, h.T @ target
    tiny = 1e-30
    for _ in range(iterations):  # einsum: small products run single-threaded, unlike BLAS on a busy box
        power *= htt / (np.einsum("ij,jf->if", hth, power) + tiny)
    return np.sqrt(power)


def seed_style_inverse(amplitude: np.ndarray, freqs: np.ndarray, sample_rate: int, frame: int) -> np.ndarray:
    """The seed's inverse, for comparison only: every frame restarts every sine at phase 0
    (t = 0, 1/sr, ... within each frame) with that frame's amplitude. float64 (n_frames * frame,)."""
    t = np.arange(frame) / sample_rate
    sines = np.sin(2 * np.pi * freqs[:, None] * t[None, :])  # (keys, frame)
    return (amplitude.T @ sines).reshape(-1)


def frame_click_ratio(samples: np.ndarray, sample_rate: int, frame_hz: float = 50.0,
                      avoid_hz: np.ndarray | None = None, width_hz: float = 1.0) -> float:
    """Share of a signal's energy within +-`width_hz` of the multiples of `frame_hz` (the lines a
    frame-rate discontinuity puts in the spectrum), leaving out lines within 5 Hz of any frequency
    in `avoid_hz` (the keys, whose energy is the music's). In [0, 1]; 0 for silence.

    samples: (n,) or (channels, n); channels are summed. Hann-windowed full-length spectrum.
    """
    power, near, _ = _line_bins(samples, sample_rate, frame_hz, avoid_hz, width_hz)
    total = power.sum()
    return float(power[near].sum() / total) if total > 0 else 0.0


def frame_line_contrast(samples: np.ndarray, sample_rate: int, frame_hz: float = 50.0,
                        avoid_hz: np.ndarray | None = None, width_hz: float = 1.0) -> float:
    """Mean spectral power within +-`width_hz` of the multiples of `frame_hz` over the mean power 2 to
    8 Hz from them (the local floor): about 1 when the frame rate leaves no lines, far above 1 for a
    frame-rate click. For music, where `frame_click_ratio` also counts the music's own energy near
    the lines. Lines within 5 Hz of `avoid_hz` are left out; nan when the floor is silent."""
    power, near, ring = _line_bins(samples, sample_rate, frame_hz, avoid_hz, width_hz)
    floor = power[ring].mean() if ring.any() else 0.0
    return float(power[near].mean() / floor) if floor > 0 else float("nan")


def _line_bins(samples, sample_rate, frame_hz, avoid_hz, width_hz):
    """(power spectrum, bins near the lines, bins of the floor around them)."""
    x = np.asarray(samples, dtype=np.float64).reshape(-1, np.shape(samples)[-1]).sum(axis=0)
    power = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    hz = np.fft.rfftfreq(len(x), 1.0 / sample_rate)
    lines = np.arange(frame_hz, sample_rate / 2 - 10.0, frame_hz)
    if avoid_hz is not None and len(avoid_hz):
        lines = lines[np.abs(lines[:, None] - np.asarray(avoid_hz)[None, :]).min(axis=1) > 5.0]
    offset = np.full(len(hz), np.inf)
    for line in lines:
        offset = np.minimum(offset, np.abs(hz - line))
    return power, offset <= width_hz, (offset >= 2 * width_hz) & (offset <= 8 * width_hz)
