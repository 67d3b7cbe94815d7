"""Partial frequencies of a piano note, measured from its spectrum with numpy.

A struck string is slightly stiff, so its partials are stretched above the integer harmonics:
``f_k = k f0 sqrt(1 + B k^2)`` with the inharmonicity coefficient ``B`` (about 1e-4 to 1e-3 in
the middle of a piano). :func:`estimate_partials` finds ``f0`` and ``B`` by peak picking and a
least-squares fit, so the synthesizer can play partials where the recording has them.
:func:`refine_frequencies` moves each partial onto its measured peak; :func:`extra_peaks` finds
the strongest peaks the string model does not explain (mostly the low thump of hammer, case and
soundboard below the fundamental, and resonances between the partials); :func:`initial_phases`
measures the phase each sinusoid starts with, so the synthesized waveform lines up with the
recording at the attack.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass
class PartialFit:
    """Fitted string model: fundamental ``f0`` (Hz), inharmonicity ``b``, and the partials found."""
    f0: float
    b: float
    found: int

    def frequencies(self, n: int) -> np.ndarray:
        """Frequencies (Hz) of partials ``1..n``: ``k f0 sqrt(1 + b k^2)``."""
        k = np.arange(1, n + 1, dtype=np.float64)
        return k * self.f0 * np.sqrt(1.0 + self.b * k * k)


def long_spectrum(audio: np.ndarray, sample_rate: int, seconds: float = 1.0, pad: int = 4):
    """``(freqs, log_magnitude)`` of one Hann-windowed, zero-padded FFT over the first ``seconds``."""
    x = np.asarray(audio, np.float64)[: int(seconds * sample_rate)]
    n_fft = 1 << int(np.ceil(np.log2(len(x) * pad)))
    mag = np.abs(np.fft.rfft(x * np.hanning(len(x)), n_fft))
    return np.fft.rfftfreq(n_fft, 1.0 / sample_rate), np.log(mag + 1e-12)


def estimate_f0(audio: np.ndarray, sample_rate: int, lo: float = 27.0, hi: float = 2100.0) -> float:
    """Rough pitch by subharmonic summation: the candidate ``f`` maximizing
    ``sum_k 0.84^(k-1) level(k f)`` over 10 harmonics, with ``level`` the log spectrum above its
    median (the decaying weights keep subharmonics of the true pitch from winning)."""
    freqs, logmag = long_spectrum(audio, sample_rate)
    level = np.maximum(logmag - np.median(logmag), 0.0)
    cands = np.geomspace(lo, hi, 1200)
    k = np.arange(1, 11)
    harm = cands[:, None] * k[None, :]
    scores = (np.interp(harm, freqs, level, right=0.0) * 0.84 ** (k - 1)).sum(1)
    return float(cands[int(np.argmax(scores))])


def _peak(freqs, logmag, centre, half_width):
    """Frequency (parabolic interpolation) and height of the highest bin within ``centre +- half_width``."""
    lo, hi = np.searchsorted(freqs, [centre - half_width, centre + half_width])
    if hi - lo < 3:
        return None, -np.inf
    i = lo + int(np.argmax(logmag[lo:hi]))
    if not 0 < i < len(freqs) - 1:
        return None, -np.inf
    a, b, c = logmag[i - 1], logmag[i], logmag[i + 1]
    denom = a - 2 * b + c
    shift = 0.5 * (a - c) / denom if denom < 0 else 0.0
    return freqs[i] + shift * (freqs[1] - freqs[0]), b


def estimate_partials(audio: np.ndarray, sample_rate: int, f0_guess: Optional[float] = None,
                      n_partials: int = 48, floor_db: float = 60.0) -> PartialFit:
    """Fit ``f0`` and ``B`` to the spectral peaks near the predicted partials of ``f0_guess``.

    Peaks more than ``floor_db`` below the strongest are ignored. The fit is refined while the
    partial range grows (8, 16, 32, ... partials), each search window centred on the previous
    fit's prediction, so ``B`` is learnt from the low partials before the high ones are sought.
    """
    freqs, logmag = long_spectrum(audio, sample_rate)
    f0 = float(f0_guess) if f0_guess else estimate_f0(audio, sample_rate)
    fit = PartialFit(f0, 0.0, 0)
    floor = logmag.max() - floor_db / 20 * np.log(10)
    nyq = 0.95 * sample_rate / 2
    upto = 8
    while True:
        upto = min(upto, n_partials)
        ks, fs, ws = [], [], []
        for k, fk in enumerate(fit.frequencies(upto), start=1):
            if fk >= nyq:
                break
            f, h = _peak(freqs, logmag, fk, 0.3 * fit.f0)
            if f is not None and h > floor:
                ks.append(k), fs.append(f), ws.append(h - floor)
        if len(ks) >= 2:
            ks, fs, ws = map(np.asarray, (ks, fs, ws))
            # f_k^2 / k^2 = f0^2 + f0^2 B k^2: weighted linear least squares in k^2
            A = np.stack([np.ones_like(ks, dtype=float), ks.astype(float) ** 2], 1) * ws[:, None]
            (a, c), *_ = np.linalg.lstsq(A, (fs / ks) ** 2 * ws, rcond=None)
            if a > 0:
                fit = PartialFit(float(np.sqrt(a)), float(np.clip(c / a, 0.0, 0.01)), len(ks))
        elif len(ks) == 1:
            fit = PartialFit(float(fs[0] / ks[0]), 0.0, 1)
        if upto >= n_partials or fit.frequencies(upto)[-1] >= nyq:
            return fit
        upto *= 2


def partial_count(fit: PartialFit, sample_rate: int, limit: int = 96) -> int:
    """How many partials of ``fit`` lie below 95% of Nyquist (at most ``limit``, at least 1)."""
    return max(1, int(np.sum(fit.frequencies(limit) < 0.95 * sample_rate / 2)))


def refine_frequencies(audio: np.ndarray, sample_rate: int, freqs: np.ndarray, f0: float,
                       floor_db: float = 60.0, tolerance: float = 0.04) -> np.ndarray:
    """Move each frequency onto the spectral peak within ``tolerance * f0`` of it, when that peak
    is less than ``floor_db`` below the strongest; other frequencies are kept."""
    spec_f, logmag = long_spectrum(audio, sample_rate, seconds=len(audio) / sample_rate)
    floor = logmag.max() - floor_db / 20 * np.log(10)
    out = np.array(freqs, np.float64)
    for i, f in enumerate(out):
        peak, height = _peak(spec_f, logmag, f, tolerance * f0)
        if peak is not None and height > floor and abs(peak - f) < tolerance * f0:
            out[i] = peak
    return out


def extra_peaks(audio: np.ndarray, sample_rate: int, avoid: np.ndarray, count: int,
                min_distance: float = 20.0) -> np.ndarray:
    """Frequencies of the ``count`` highest spectral peaks (20 Hz to 95% of Nyquist) that lie more
    than ``min_distance`` Hz from every frequency in ``avoid``."""
    if count <= 0:
        return np.zeros(0)
    spec_f, logmag = long_spectrum(audio, sample_rate, seconds=len(audio) / sample_rate)
    i = np.arange(1, len(logmag) - 1)
    i = i[(logmag[i] > logmag[i - 1]) & (logmag[i] >= logmag[i + 1])
          & (spec_f[i] > 20.0) & (spec_f[i] < 0.95 * sample_rate / 2)]
    avoid = np.asarray(avoid, np.float64)
    if avoid.size:
        i = i[np.min(np.abs(spec_f[i, None] - avoid[None, :]), axis=1) > min_distance]
    return np.sort(spec_f[i[np.argsort(-logmag[i])[:count]]])


def initial_phases(audio: np.ndarray, sample_rate: int, freqs: np.ndarray, seconds: float = 0.1) -> np.ndarray:
    """Phase ``phi`` of each frequency over the first ``seconds`` (Hann-weighted), for sinusoids
    ``sin(2 pi f (n + 1) / sample_rate + phi)``, the phase convention of ``harmonic_oscillator``."""
    n = np.arange(min(len(audio), max(int(seconds * sample_rate), 2)))
    x = np.asarray(audio, np.float64)[:len(n)] * np.hanning(len(n))
    z = np.exp(-2j * np.pi * np.outer(np.asarray(freqs, np.float64), n + 1) / sample_rate) @ x
    return np.angle(z) + np.pi / 2                          # sin(t + phi) = cos(t + phi - pi/2)
