"""The demo's synthesizer: an MLP of time drives a bank of sinusoids and a bank of noise bands.

``PianoSynth`` maps a few features of each frame's time to per-frame amplitudes of
fixed-frequency sinusoids (the piano's partials and the strongest other spectral peaks, measured
from the recording by :mod:`audiograd.examples.partials`) and per-frame gains of noise bands. The controls are
upsampled to the sample rate with :func:`audiograd.dsp.synth.upsample_frames`.

The sinusoids come from :func:`audiograd.dsp.synth.harmonic_oscillator` with one sinusoid per
batch row: each row's "f0" is that sinusoid's frequency, so stretched piano partials need no
integer ratios. Their frequencies and phases are fixed, so the oscillator runs once, with unit
amplitudes, and a training step only scales the stored sinusoids by the upsampled amplitudes
(the same sum, without recomputing a sine per sample and sinusoid every step). The noise is a
fixed white noise split into equal-width frequency bands, each scaled by its own gain.
"""
from __future__ import annotations

import math

import numpy as np

import audiograd as ag
from audiograd import nn
from audiograd.dsp.synth import harmonic_oscillator, upsample_frames
from audiograd.nn import functional as F


def time_features(frames: int, hop: int, sample_rate: int, n_octaves: int = 6) -> np.ndarray:
    """``(frames, 2 + 2 * n_octaves + 3)`` float32 features of each frame centre's time.

    With ``u`` the time over the clip length (0..1): ``u``, ``2u - 1``, ``sin``/``cos`` of
    ``pi 2^j u`` for ``j < n_octaves``, and three decays ``exp(-t / tau)``
    (``tau`` = 30 ms, 0.2 s, 1 s) that make a struck string's envelope easy to express.
    """
    t = (np.arange(frames) + 0.5) * hop / sample_rate
    u = t / (frames * hop / sample_rate)
    cols = [u, 2 * u - 1]
    for j in range(n_octaves):
        cols += [np.sin(math.pi * 2 ** j * u), np.cos(math.pi * 2 ** j * u)]
    cols += [np.exp(-t / tau) for tau in (0.03, 0.2, 1.0)]
    return np.stack(cols, 1).astype(np.float32)


def noise_bank(samples: int, bands: int, seed: int = 0) -> np.ndarray:
    """``(samples, bands)`` float32: one white-noise signal split into ``bands`` equal-width,
    overlapping bands from DC to Nyquist. Band ``b``'s response is ``cos^2`` shaped, peaking at
    ``b / (bands - 1)`` of Nyquist and reaching zero at the neighbouring bands' peaks, so the
    responses sum to one and equal gains give back the white noise."""
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.standard_normal(samples))
    pos = np.linspace(0.0, bands - 1.0, len(spec))          # each bin's position in band units
    out = np.empty((samples, bands), np.float32)
    for b in range(bands):
        d = np.abs(pos - b)
        out[:, b] = np.fft.irfft(spec * np.where(d < 1.0, np.cos(0.5 * np.pi * d) ** 2, 0.0), samples)
    return out


def sinusoids(freqs, phases, samples: int, sample_rate: int) -> np.ndarray:
    """``(samples, len(freqs))`` float32 unit sinusoids ``sin(2 pi f (n + 1) / sample_rate + phase)``
    from :func:`harmonic_oscillator`, one batch row per frequency; those at or above Nyquist are 0.

    The oscillator's phase is the running sum of ``f0 / sample_rate`` (in cycles), so adding
    ``phase / (2 pi)`` cycles to the first sample of a row's ``f0`` starts that row at ``phase``
    (that first sample itself is then silenced by the oscillator's anti-aliasing mask).
    """
    k = len(freqs)
    hz = ag.tensor(np.asarray(freqs, np.float32).reshape(k, 1, 1)).expand(k, samples, 1)
    kick = np.zeros(k) if phases is None else np.mod(phases, 2 * np.pi) / (2 * np.pi) * sample_rate
    f0 = hz + F.pad(ag.tensor(kick.astype(np.float32).reshape(k, 1, 1)), (0, 0, 0, samples - 1))
    with ag.no_grad():
        bank = harmonic_oscillator(f0, ag.ones(k, samples, 1), sample_rate)           # (k, samples)
    return np.ascontiguousarray(bank.numpy().T)


class FusedLinear(nn.Linear):
    """``nn.Linear`` (same parameters and init) computed as a broadcast multiply and a sum, which
    compiles into fused kernels instead of calling the BLAS. For a few hundred rows the arithmetic
    is tiny, and the BLAS's own worker threads would compete with the kernels' threads for the
    cores (with only a few cores that made each training step several times slower)."""

    def forward(self, x: ag.Tensor) -> ag.Tensor:
        """``x @ weight.T + bias`` for ``x`` of shape (rows, in_features)."""
        return (x.unsqueeze(-1) * self.weight.transpose(0, 1).unsqueeze(0)).sum(1) + self.bias


def positive(x: ag.Tensor, top: float = 1.0, decades: float = 2.0) -> ag.Tensor:
    """DDSP's scaled sigmoid, ``top * sigmoid(x) ** (decades ln 10) + 1e-7``, computed stably as
    ``top * exp(-(decades ln 10) softplus(-x))``: exponential in ``x`` below 0, at most ``top``."""
    return (-(decades * math.log(10.0)) * (-x).softplus()).exp() * top + 1e-7


class PianoSynth(nn.Module):
    """MLP(time features) -> sinusoid amplitudes + noise-band gains -> audio ``(1, 1, samples)``.

    Args:
        freqs: frequencies (Hz) of the sinusoids; those at or above Nyquist stay silent.
        phases: their phases at the start (radians, see
            :func:`audiograd.examples.partials.initial_phases`), or None for zeros.
        frames, hop, sample_rate: the control grid; the output has ``frames * hop`` samples.
        hidden: width of the MLP's two hidden layers.
        noise_bands: bands of the noise filter bank (0 turns the noise off).
        seed: seeds the weights and the noise.
        offset: added to the MLP's outputs; -3 starts every sinusoid and band near -120 dB,
            so training starts from a nearly silent synth.
    """

    def __init__(self, freqs, phases, frames: int, hop: int, sample_rate: int, hidden: int = 128,
                 noise_bands: int = 256, seed: int = 0, offset: float = -3.0):
        super().__init__()
        ag.manual_seed(seed)
        self.frames, self.hop, self.sample_rate, self.offset = frames, hop, sample_rate, offset
        self.n_sines, self.noise_bands = len(freqs), noise_bands
        feats = time_features(frames, hop, sample_rate)
        self.features = ag.tensor(feats)
        self.mlp = nn.Sequential(FusedLinear(feats.shape[1], hidden), nn.LeakyReLU(0.1),
                                 FusedLinear(hidden, hidden), nn.LeakyReLU(0.1),
                                 FusedLinear(hidden, self.n_sines + noise_bands))
        n = frames * hop
        self.sines = ag.tensor(sinusoids(freqs, phases, n, sample_rate)[None])                # (1, N, sines)
        self.noise = ag.tensor(noise_bank(n, noise_bands, seed)[None]) if noise_bands else None  # (1, N, bands)

    def controls(self):
        """Frame-rate controls: amplitudes ``(1, frames, sines)``, noise gains ``(1, frames, bands)``."""
        out = self.mlp(self.features).unsqueeze(0) + self.offset
        amps = positive(out[..., :self.n_sines])
        gains = positive(out[..., self.n_sines:], top=0.1) if self.noise_bands else None
        return amps, gains

    def forward(self) -> ag.Tensor:
        """The synthesized clip, ``(1, 1, frames * hop)``."""
        amps, gains = self.controls()
        audio = (upsample_frames(amps, self.hop) * self.sines).sum(-1)
        if self.noise_bands:
            audio = audio + (upsample_frames(gains, self.hop) * self.noise).sum(-1)
        return audio.unsqueeze(1)
