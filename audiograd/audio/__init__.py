"""Audio files and sample-rate / channel conversion for the command line and models."""
from .io import (AudioFileError, TruncatedAudioWarning, check_finite, match_channels, probe_audio, read_audio,
                 read_audio_reporting, resample, write_audio)
from .output import OutputPathError, atomic_output, check_output_path

__all__ = ["AudioFileError", "OutputPathError", "TruncatedAudioWarning", "atomic_output", "check_finite",
           "check_output_path", "match_channels", "probe_audio", "read_audio", "read_audio_reporting", "resample",
           "write_audio"]
