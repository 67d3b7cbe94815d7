"""read_audio's input policy: non-finite samples, files cut short, broken headers, absurd
sample rates and channel counts, empty files. Every error names the file."""
import struct
import warnings

import numpy as np
import pytest
import soundfile as sf

from audiograd.audio import (AudioFileError, TruncatedAudioWarning, probe_audio, read_audio)
from audiograd.audio.io import MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

RATE = 16000


def _noise(channels, frames, seed=0):
    return (0.2 * np.random.default_rng(seed).standard_normal((channels, frames))).astype(np.float32)


def _fmt_offset(data: bytes) -> int:
    """Byte offset of the ``fmt `` chunk's body in a RIFF/WAVE file."""
    return data.index(b"fmt ") + 8


def _data_offset(data: bytes) -> int:
    return data.index(b"data") + 8


def _read_quietly(path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        return read_audio(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("channels", [1, 2, 3])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_non_finite_samples_name_the_first_bad_position(tmp_path, bad, channels, where):
    frames = 1000
    audio = _noise(channels, frames)
    channel, sample = {"first": (0, 0), "middle": (channels // 2, frames // 2),
                       "last": (channels - 1, frames - 1)}[where]
    audio[channel, sample] = bad
    if where != "last":  # a later bad sample must not be the one reported
        audio[channels - 1, frames - 1] = np.nan
    path = tmp_path / "bad.wav"
    sf.write(path, audio.T, RATE, subtype="FLOAT")
    with pytest.raises(AudioFileError) as info:
        read_audio(path)
    msg = str(info.value)
    assert str(path) in msg
    assert f"sample {sample} of channel {channel} (at {sample / RATE:.6f} s) is {audio[channel, sample]}" in msg


@pytest.mark.parametrize("subtype, fmt", [("PCM_16", "WAV"), ("PCM_24", "WAV"), ("FLOAT", "WAV"),
                                          ("PCM_16", "FLAC"), ("PCM_24", "FLAC")])
@pytest.mark.parametrize("keep", [0.3, 0.75, 0.95])
def test_truncated_files_are_read_with_a_warning(tmp_path, subtype, fmt, keep):
    frames, channels = 40000, 2
    audio = _noise(channels, frames)
    whole = tmp_path / f"whole.{fmt.lower()}"
    sf.write(whole, audio.T, RATE, subtype=subtype, format=fmt)
    full, _ = _read_quietly(whole)
    data = whole.read_bytes()
    cut = tmp_path / f"cut.{fmt.lower()}"
    cut.write_bytes(data[:int(len(data) * keep)])
    with pytest.warns(TruncatedAudioWarning) as record:
        got, rate = read_audio(cut)
    assert rate == RATE and got.shape[0] == channels and 0 < got.shape[1] < frames
    if fmt == "WAV":  # whole frames left after the header
        block = channels * {"PCM_16": 2, "PCM_24": 3, "FLOAT": 4}[subtype]
        assert got.shape[1] == (int(len(data) * keep) - _data_offset(data)) // block
    np.testing.assert_array_equal(got, full[:, :got.shape[1]])  # what was read is intact
    msg = str(record[0].message)
    assert str(cut) in msg and f"{frames} frames expected, {got.shape[1]} read" in msg


@pytest.mark.parametrize("fmt", ["WAV", "FLAC"])
def test_complete_files_read_without_warning(tmp_path, fmt):
    audio = _noise(2, 5000)
    path = tmp_path / f"a.{fmt.lower()}"
    sf.write(path, audio.T, RATE, subtype="PCM_24", format=fmt)
    got, rate = _read_quietly(path)
    assert rate == RATE and got.shape == audio.shape and np.abs(got - audio).max() < 1e-6


def _patched_wav(tmp_path, patch, name="patched.wav", frames=1000, channels=2):
    path = tmp_path / name
    sf.write(path, _noise(channels, frames).T, RATE, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    patch(data)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("patch, expected", [
    (lambda d: d.__setitem__(slice(0, 4), b"RIFX"), "not a readable audio file"),
    (lambda d: struct.pack_into("<H", d, _fmt_offset(d), 0x1234), "not a readable audio file"),
    (lambda d: struct.pack_into("<H", d, _fmt_offset(d) + 2, 0), "not a readable audio file"),
    (lambda d: struct.pack_into("<H", d, _fmt_offset(d) + 2, MAX_CHANNELS + 1), f"{MAX_CHANNELS + 1} channels"),
    (lambda d: d.__delitem__(slice(30, None)), "not a readable audio file"),
    (lambda d: d.__setitem__(slice(None), b"\x00" * len(d)), "not a readable audio file"),
], ids=["magic", "format_tag", "zero_channels", "too_many_channels", "cut_in_header", "zeroed"])
def test_corrupted_headers_are_refused_naming_the_file(tmp_path, patch, expected):
    path = _patched_wav(tmp_path, patch)
    for check in (probe_audio, read_audio):
        with pytest.raises(AudioFileError, match=expected) as info:
            check(path)
        assert str(info.value).startswith(f"{path}: ")


def _with_rate(rate):
    def patch(d):
        struct.pack_into("<I", d, _fmt_offset(d) + 4, rate)
        struct.pack_into("<I", d, _fmt_offset(d) + 8, min(rate * 4, 2**32 - 1))  # bytes per second, kept consistent
    return patch


@pytest.mark.parametrize("rate", [1, 8, MIN_SAMPLE_RATE - 1, MAX_SAMPLE_RATE + 1, 10_000_000, 2**31 - 1])
def test_absurd_sample_rates_are_refused_before_decoding(tmp_path, monkeypatch, rate):
    path = _patched_wav(tmp_path, _with_rate(rate))

    def no_decoding(*args, **kwargs):
        raise AssertionError("the file was decoded before its sample rate was checked")
    monkeypatch.setattr(sf.SoundFile, "read", no_decoding)
    for check in (probe_audio, read_audio):
        with pytest.raises(AudioFileError, match=f"sample rate {rate} Hz is outside the supported range") as info:
            check(path)
        assert str(path) in str(info.value)


@pytest.mark.parametrize("rate", [MIN_SAMPLE_RATE, 8000, 192000, MAX_SAMPLE_RATE])
def test_sample_rates_at_and_inside_the_limits_are_read(tmp_path, rate):
    path = _patched_wav(tmp_path, _with_rate(rate))
    audio, got = _read_quietly(path)
    assert got == rate and audio.shape == (2, 1000)


@pytest.mark.parametrize("fmt, subtype", [("WAV", "PCM_16"), ("WAV", "FLOAT"), ("AIFF", "PCM_16")])
@pytest.mark.parametrize("channels", [1, 2])
def test_zero_length_files_are_refused(tmp_path, fmt, subtype, channels):
    path = tmp_path / f"empty.{fmt.lower()}"
    sf.write(path, np.zeros((0, channels), np.float32), RATE, subtype=subtype, format=fmt)
    with pytest.raises(AudioFileError, match="holds no audio samples") as info:
        read_audio(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", [b"", b"RIFF", b"not audio at all" * 10])
def test_non_audio_files_are_refused_naming_the_file(tmp_path, content):
    path = tmp_path / "x.wav"
    path.write_bytes(content)
    with pytest.raises(AudioFileError, match="not a readable audio file") as info:
        read_audio(path)
    assert str(info.value).startswith(f"{path}: ")
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        read_audio(tmp_path / "missing.wav")
    for special in (tmp_path, "/dev/null"):  # a directory, a device
        with pytest.raises(AudioFileError, match=f"{special}: not a regular file"):
            read_audio(special)
