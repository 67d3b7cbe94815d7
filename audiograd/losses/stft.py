"""Spectral losses with auraloss 0.4.0's names, arguments and defaults (``auraloss.freq``).

``STFTLoss`` compares the STFT magnitudes of input and target (spectral convergence,
log-magnitude and linear-magnitude terms); ``MultiResolutionSTFTLoss`` averages it over
several FFT sizes; ``SumAndDifferenceSTFTLoss`` applies that to the sum and the difference
of the two channels of stereo audio. The STFT is ``audiograd.dsp.stft`` (a batched real FFT
for power-of-two sizes), so gradients with respect to input and target come from autograd.

``perceptual_weighting`` filters input and target with auraloss's A-weighting FIR first (its
design needs scipy). Not implemented (a NotImplementedError says so): mel/chroma scaling
(``scale``), ``scale_invariance`` and the kaiser window.
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np

from ..dsp.stft import _hann, stft
from ..nn.module import Module, ModuleList
from ..tensor.tensor import Tensor
from . import functional as F
from .a_weighting import a_weight, a_weighting_taps


def _periodic_window(name: str, n: int) -> np.ndarray:
    """torch's periodic windows (``torch.<name>(n)`` with default arguments), as float64."""
    k = np.arange(n)
    if name == "hann_window":
        return _hann(n, True)
    if n == 1:
        return np.ones(1)
    if name == "hamming_window":
        return 0.54 - 0.46 * np.cos(2 * np.pi * k / n)
    if name == "blackman_window":
        return 0.42 - 0.5 * np.cos(2 * np.pi * k / n) + 0.08 * np.cos(4 * np.pi * k / n)
    if name == "bartlett_window":
        return 1.0 - np.abs(2.0 * k / n - 1.0)
    raise NotImplementedError(f"STFTLoss: window {name!r} is not implemented "
                              "(hann_window, hamming_window, blackman_window, bartlett_window)")


def _not_implemented(option: str) -> NotImplementedError:
    return NotImplementedError(f"STFTLoss: {option} is not implemented in audiograd "
                               "(the default auraloss STFT loss path is)")


class STFTLoss(Module):
    """auraloss's ``STFTLoss``: a weighted sum of spectral convergence, log-magnitude and
    linear-magnitude distances between the STFTs of ``input`` and ``target`` (B, C, T), plus
    the mean squared difference of their phases (``w_phs``).

    Channels are folded into the batch; the STFT is centred with reflect padding and a
    periodic window of ``win_length`` samples. ``mag = sqrt(clamp(re^2 + im^2, min=eps))``;
    spectral convergence is ``||Y - X||_F / ||Y||_F`` over the whole batch; the magnitude terms
    use L1 (``mag_distance='L1'``) or MSE (``'L2'``) with ``reduction``. ``sc_per_item`` computes
    spectral convergence per (item, channel) before the reduction, as stable-audio-tools' own copy
    of auraloss (which its autoencoder training uses) does. ``output='full'``
    returns ``(loss, sc_mag_loss, log_mag_loss, lin_mag_loss, phs_loss)``, unused terms as 0.0.
    """

    def __init__(self, fft_size: int = 1024, hop_size: int = 256, win_length: int = 1024,
                 window: str = "hann_window", w_sc: float = 1.0, w_log_mag: float = 1.0,
                 w_lin_mag: float = 0.0, w_phs: float = 0.0, sample_rate: Optional[float] = None,
                 scale: Optional[str] = None, n_bins: Optional[int] = None, perceptual_weighting: bool = False,
                 scale_invariance: bool = False, eps: float = 1e-8, output: str = "loss",
                 reduction: str = "mean", mag_distance: str = "L1", device=None, sc_per_item: bool = False):
        super().__init__()
        self.sc_per_item = sc_per_item
        if scale is not None:
            raise _not_implemented(f"frequency scaling scale={scale!r} (mel/chroma filterbanks)")
        if perceptual_weighting:
            if sample_rate is None:
                raise ValueError("STFTLoss: `sample_rate` must be supplied when `perceptual_weighting = True`.")
            a_weighting_taps(float(sample_rate))  # designed (and scipy checked) now, not at the first call
        if scale_invariance:
            raise _not_implemented("scale_invariance")
        if mag_distance not in ("L1", "L2"):
            raise ValueError(f"Invalid distance: '{mag_distance}'.")
        if output not in ("loss", "full"):
            raise ValueError(f"STFTLoss: output must be 'loss' or 'full', got {output!r}")
        F._check_reduction("STFTLoss", reduction)
        self.fft_size, self.hop_size, self.win_length = int(fft_size), int(hop_size), int(win_length)
        self.window_name = window
        self.window = _periodic_window(window, self.win_length)
        self.w_sc, self.w_log_mag, self.w_lin_mag, self.w_phs = w_sc, w_log_mag, w_lin_mag, w_phs
        self.sample_rate, self.scale, self.n_bins = sample_rate, scale, n_bins
        self.perceptual_weighting, self.scale_invariance = perceptual_weighting, scale_invariance
        self.eps, self.output, self.reduction, self.mag_distance = eps, output, reduction, mag_distance
        self.device = device

    def extra_repr(self) -> str:
        return (f"fft_size={self.fft_size}, hop_size={self.hop_size}, win_length={self.win_length}, "
                f"window={self.window_name!r}")

    def stft(self, x: Tensor):
        """Magnitude and phase spectra (B, fft_size // 2 + 1, frames) of ``x`` (B, T); the phase
        is None unless the phase term is weighted."""
        re, im = stft(x, self.fft_size, self.hop_size, self.win_length, self.window)
        return (re * re + im * im).clamp(min=self.eps).sqrt(), (im.atan2(re) if self.w_phs else None)

    def _distance(self, x: Tensor, y: Tensor) -> Tensor:
        if self.mag_distance == "L1":
            return F.l1_loss(x, y, reduction=self.reduction)
        return F.mse_loss(x, y, reduction=self.reduction)

    def forward(self, input: Tensor, target: Tensor):
        if input.ndim != 3 or tuple(input.shape) != tuple(target.shape):
            raise ValueError(f"STFTLoss: input and target must both be (batch, channels, time), got "
                             f"{tuple(input.shape)} and {tuple(target.shape)}")
        if self.perceptual_weighting:
            input, target = a_weight(input, self.sample_rate), a_weight(target, self.sample_rate)
        x_mag, x_phs = self.stft(input.reshape(-1, input.shape[-1]))
        y_mag, y_phs = self.stft(target.reshape(-1, target.shape[-1]))

        if not self.w_sc:
            sc_mag_loss = 0.0
        elif self.sc_per_item:  # stable-audio-tools' copy of auraloss: one ratio per (item, channel)
            sc_mag_loss = ((y_mag - x_mag).square().sum((-1, -2)).sqrt()
                           / y_mag.square().sum((-1, -2)).sqrt()).reshape(-1, 1, 1)
        else:
            sc_mag_loss = (y_mag - x_mag).square().sum().sqrt() / y_mag.square().sum().sqrt()
        log_mag_loss = self._distance(x_mag.log(), y_mag.log()) if self.w_log_mag else 0.0
        lin_mag_loss = self._distance(x_mag, y_mag) if self.w_lin_mag else 0.0
        phs_loss = F.mse_loss(x_phs, y_phs) if self.w_phs else 0.0

        loss = (self.w_sc * sc_mag_loss) + (self.w_log_mag * log_mag_loss) + (self.w_lin_mag * lin_mag_loss) \
            + (self.w_phs * phs_loss)
        if isinstance(loss, Tensor):
            loss = F._reduce(loss, self.reduction)
        if self.output == "loss":
            return loss
        return loss, sc_mag_loss, log_mag_loss, lin_mag_loss, phs_loss


class MultiResolutionSTFTLoss(Module):
    """auraloss's ``MultiResolutionSTFTLoss``: the mean of ``STFTLoss`` over resolutions
    ``zip(fft_sizes, hop_sizes, win_lengths)``; other keyword arguments go to every ``STFTLoss``.
    ``output='full'`` returns ``(loss, sc_mag_losses, log_mag_losses, lin_mag_losses, phs_losses)``.
    """

    def __init__(self, fft_sizes: List[int] = (1024, 2048, 512), hop_sizes: List[int] = (120, 240, 50),
                 win_lengths: List[int] = (600, 1200, 240), window: str = "hann_window", w_sc: float = 1.0,
                 w_log_mag: float = 1.0, w_lin_mag: float = 0.0, w_phs: float = 0.0,
                 sample_rate: Optional[float] = None, scale: Optional[str] = None, n_bins: Optional[int] = None,
                 perceptual_weighting: bool = False, scale_invariance: bool = False, **kwargs):
        super().__init__()
        if not len(fft_sizes) == len(hop_sizes) == len(win_lengths):
            raise ValueError("MultiResolutionSTFTLoss: fft_sizes, hop_sizes and win_lengths must have equal lengths")
        self.fft_sizes, self.hop_sizes, self.win_lengths = list(fft_sizes), list(hop_sizes), list(win_lengths)
        self.stft_losses = ModuleList([
            STFTLoss(fs, ss, wl, window, w_sc, w_log_mag, w_lin_mag, w_phs, sample_rate, scale, n_bins,
                     perceptual_weighting, scale_invariance, **kwargs)
            for fs, ss, wl in zip(fft_sizes, hop_sizes, win_lengths)])

    def forward(self, x: Tensor, y: Tensor):
        total = 0.0
        terms = ([], [], [], [])
        for f in self.stft_losses:
            out = f(x, y)
            if f.output == "full":
                total = total + out[0]
                for acc, v in zip(terms, out[1:]):
                    acc.append(v)
            else:
                total = total + out
        total = total / len(self.stft_losses)
        if self.stft_losses[0].output == "loss":
            return total
        return (total,) + terms


class SumAndDifferenceSTFTLoss(Module):
    """auraloss's ``SumAndDifferenceSTFTLoss`` for stereo (B, 2, T) audio:
    ``(w_sum * MRSTFT(sum) + w_diff * MRSTFT(diff)) / 2`` with ``sum = L + R``, ``diff = L - R``.
    ``output='full'`` returns ``(loss, sum_loss, diff_loss)``.
    """

    def __init__(self, fft_sizes: List[int], hop_sizes: List[int], win_lengths: List[int],
                 window: str = "hann_window", w_sum: float = 1.0, w_diff: float = 1.0, output: str = "loss",
                 **kwargs):
        super().__init__()
        if output not in ("loss", "full"):
            raise ValueError(f"SumAndDifferenceSTFTLoss: output must be 'loss' or 'full', got {output!r}")
        self.w_sum, self.w_diff, self.output = w_sum, w_diff, output
        self.mrstft = MultiResolutionSTFTLoss(fft_sizes, hop_sizes, win_lengths, window, **kwargs)

    @staticmethod
    def _sum_diff(x: Tensor):
        if x.ndim != 3 or x.shape[1] != 2:
            raise ValueError(f"Input must be stereo: got shape {tuple(x.shape)}.")
        left, right = x[:, 0, :], x[:, 1, :]
        return (left + right).unsqueeze(1), (left - right).unsqueeze(1)

    def forward(self, input: Tensor, target: Tensor):
        if tuple(input.shape) != tuple(target.shape):
            raise ValueError(f"SumAndDifferenceSTFTLoss: shapes differ: {tuple(input.shape)} vs {tuple(target.shape)}")
        input_sum, input_diff = self._sum_diff(input)
        target_sum, target_diff = self._sum_diff(target)
        sum_loss = self.mrstft(input_sum, target_sum)
        diff_loss = self.mrstft(input_diff, target_diff)
        loss = ((self.w_sum * sum_loss) + (self.w_diff * diff_loss)) / 2
        if self.output == "loss":
            return loss
        return loss, sum_loss, diff_loss
