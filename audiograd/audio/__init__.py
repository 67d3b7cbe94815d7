"""Audio files and sample-rate / channel conversion for the command line and models."""
from .io import AudioFileError, atomic_output, match_channels, read_audio, resample, write_audio

__all__ = ["AudioFileError", "atomic_output", "match_channels", "read_audio", "resample", "write_audio"]
