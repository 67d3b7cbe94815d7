"""Training data: fixed-size chunks of a folder of audio files, batches as pure functions of
(seed, step), prepared in a background thread."""
from .audio_folder import (AUDIO_EXTENSIONS, AudioFolderDataset, SkippedAudioWarning,
                           force_channels, is_silent, list_audio_files, pad_crop, random_offset)
from .loader import BackgroundLoader

__all__ = ["AUDIO_EXTENSIONS", "AudioFolderDataset", "BackgroundLoader", "SkippedAudioWarning", "force_channels",
           "is_silent", "list_audio_files", "pad_crop", "random_offset"]
