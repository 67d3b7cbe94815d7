"""Signal processing built from tensor ops: STFT, inverse STFT, real FFTs and windows, and the differentiable pieces of
a DDSP synthesizer (frame upsampling, harmonic oscillator bank, filtered noise)."""
from .fft import irfft_frames, rfft_frames
from .stft import hann_window, istft, stft
from .synth import filtered_noise, harmonic_oscillator, noise_filter_ir, upsample_frames

__all__ = ["stft", "istft", "rfft_frames", "irfft_frames", "hann_window", "upsample_frames", "harmonic_oscillator", "filtered_noise", "noise_filter_ir"]
