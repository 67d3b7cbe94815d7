"""Signal processing built from tensor ops: STFT and windows, and the differentiable pieces of
a DDSP synthesizer (frame upsampling, harmonic oscillator bank, filtered noise)."""
from .stft import hann_window, stft
from .synth import filtered_noise, harmonic_oscillator, noise_filter_ir, upsample_frames

__all__ = ["stft", "hann_window", "upsample_frames", "harmonic_oscillator", "filtered_noise", "noise_filter_ir"]
