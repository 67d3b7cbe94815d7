"""The audio-folder training dataset against stable-audio-tools' own transforms (its data/utils.py,
driven by the same random numbers as ours), its determinism and resume property, hostile files,
and the background loader."""
import importlib.metadata
import importlib.util
import os
import struct
import time
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings, strategies as st

from audiograd.audio import TruncatedAudioWarning
from audiograd.data import (AudioFolderDataset, BackgroundLoader, SkippedAudioWarning, force_channels,
                            list_audio_files, pad_crop, random_offset)
from audiograd.data import audio_folder
from torchaudio_reference import import_torchaudio

RATE = 16000


@pytest.fixture(scope="module")
def sat():
    """stable-audio-tools' data/utils.py, loaded as a file (its package imports every model)."""
    # located through its distribution: other tests may have put a stand-in package in sys.modules
    try:
        file = Path(importlib.metadata.distribution("stable-audio-tools").locate_file("stable_audio_tools/data/utils.py"))
    except importlib.metadata.PackageNotFoundError:
        file = None
    if file is None or not file.is_file() or importlib.util.find_spec("torch") is None or import_torchaudio() is None:
        pytest.skip("stable-audio-tools, torch or torchaudio is not installed")
    module_spec = importlib.util.spec_from_file_location("sat_data_utils", file)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def _same_stream(rng):
    """A stand-in for the ``random`` module of SAT's utils drawing from a numpy Generator as ours
    does: SAT's crop offset and phase flip then come from exactly our random numbers."""
    return types.SimpleNamespace(randint=lambda a, b: int(rng.integers(a, b, endpoint=True)), random=rng.random)


def _noise(channels, frames, seed=0, amp=0.3):
    return (amp * np.random.default_rng(seed).standard_normal((channels, frames))).astype(np.float32)


def _write(path, audio, rate=RATE, subtype="FLOAT"):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio.T, rate, subtype=subtype)
    return path


def _folder(root, count=6, frames=(500, 3000)):
    for i in range(count):
        length = int(np.random.default_rng(i).integers(*frames))
        _write(root / f"f{i}.wav", _noise(1 + i % 2, length, seed=i))
    return root


def test_listing_is_sorted_recursive_and_skips_hidden_and_non_regular(tmp_path):
    for rel in ["b.wav", "a/z.FLAC", "a/c.aiff", "x.wav/inner.ogg", ".hidden.wav", ".git/h.wav", "notes.txt"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    os.symlink("loop.wav", tmp_path / "loop.wav")
    os.mkfifo(tmp_path / "pipe.wav")
    os.symlink("..", tmp_path / "a" / "up")  # a folder loop: listed once
    with pytest.warns(SkippedAudioWarning) as caught:
        files = list_audio_files(tmp_path)
    listed = [p.relative_to(tmp_path).as_posix() for p in files]
    assert listed == ["a/c.aiff", "a/z.FLAC", "b.wav", "x.wav/inner.ogg"]
    messages = " ".join(str(w.message) for w in caught)
    assert str(tmp_path / "loop.wav") in messages and str(tmp_path / "pipe.wav") in messages


@pytest.mark.parametrize("make", ["missing", "empty", "no_audio"])
def test_folders_without_audio_are_refused_by_name(tmp_path, make):
    root = tmp_path / "songs"
    if make != "missing":
        root.mkdir()
    if make == "no_audio":
        (root / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match=str(root)):
        AudioFolderDataset(root, 100, RATE, 2)


@pytest.mark.parametrize("frames, size", [(300, 300), (120, 300), (1000, 300), (48000, 16000), (100001, 16000)])
def test_pad_crop_matches_sat_for_the_same_random_numbers(sat, monkeypatch, frames, size):
    import torch
    audio = _noise(2, frames)
    for seed in range(4):
        monkeypatch.setattr(sat, "random", _same_stream(np.random.default_rng(seed)))
        ref = sat.PadCrop_Normalized_T(size, RATE, randomize=True)(torch.from_numpy(audio))
        chunk, info = pad_crop(audio, size, RATE, random_offset(frames, size, np.random.default_rng(seed)))
        np.testing.assert_array_equal(chunk, ref[0].numpy())
        assert info["timestamps"] == (ref[1], ref[2])
        assert (info["seconds_start"], info["seconds_total"]) == (ref[3], ref[4])
        np.testing.assert_array_equal(info["padding_mask"], ref[5].numpy())


def test_random_offset_covers_its_range_and_draws_nothing_for_short_audio():
    rng = np.random.default_rng(0)
    assert {random_offset(103, 100, rng) for _ in range(200)} == {0, 1, 2, 3}
    state = rng.bit_generator.state
    assert random_offset(100, 100, rng) == 0 and random_offset(7, 100, rng) == 0
    assert rng.bit_generator.state == state


@pytest.mark.parametrize("have", [1, 2, 3, 5])
def test_channels_match_sat_stereo_and_mono(sat, have):
    import torch
    audio = _noise(have, 257)
    np.testing.assert_array_equal(force_channels(audio, 2), sat.Stereo()(torch.from_numpy(audio)).numpy())
    np.testing.assert_allclose(force_channels(audio, 1), sat.Mono()(torch.from_numpy(audio)).numpy(),
                               rtol=1e-6, atol=1e-7)
    if have == 2:
        with pytest.raises(ValueError, match="cannot make 3 channels of 2"):
            force_channels(audio, 3)
    else:
        expected = audio.repeat(3, 0) if have == 1 else audio[:3]
        np.testing.assert_array_equal(force_channels(audio, 3), expected)


@pytest.mark.parametrize("have, channels", [(1, 2), (2, 2), (3, 2), (1, 1), (2, 1), (3, 1)])
@pytest.mark.parametrize("frames", [700, 5000])
def test_items_match_sat_crop_flip_clamp_channels_chain(sat, monkeypatch, tmp_path, have, channels, frames):
    import torch
    audio = _noise(have, frames, amp=0.8)  # peaks past 1: clamping comes before the channel mean
    _write(tmp_path / "a.wav", audio)
    ds = AudioFolderDataset(tmp_path, 2048, RATE, channels)
    flips = set()
    for seed in range(6):
        got, info = ds.item(0, np.random.default_rng(seed))
        monkeypatch.setattr(sat, "random", _same_stream(np.random.default_rng(seed)))
        chunk, t0, t1, s0, total, mask = sat.PadCrop_Normalized_T(2048, RATE)(torch.from_numpy(audio))
        flipped = sat.PhaseFlipper()(chunk)
        flips.add(bool(torch.equal(flipped, -chunk)))
        ref = (sat.Stereo() if channels == 2 else sat.Mono())(flipped.clamp(-1, 1)).numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-7)
        assert got.dtype == np.float32 and info["timestamps"] == (t0, t1)
        assert (info["seconds_start"], info["seconds_total"]) == (s0, total)
        np.testing.assert_array_equal(info["padding_mask"], mask.numpy())
        assert info["path"] == str(tmp_path / "a.wav") and info["relpath"] == "a.wav"
    assert flips == {True, False}


def test_files_are_resampled_to_the_dataset_rate(tmp_path):
    t = np.arange(22050) / 22050
    _write(tmp_path / "tone.flac", (0.5 * np.sin(2 * np.pi * 1000 * t))[None].astype(np.float32), 22050, "PCM_24")
    ds = AudioFolderDataset(tmp_path, 20000, RATE, 1, random_crop=False, augment_phase=False)
    audio, info = ds.item(0, np.random.default_rng(0))
    kept = int(info["padding_mask"].sum())
    assert kept == RATE and info["seconds_total"] == 1 and info["sample_rate"] == RATE
    spectrum = np.abs(np.fft.rfft(audio[0, :kept]))
    assert np.argmax(spectrum) * RATE / kept == pytest.approx(1000, abs=1)


def test_batches_are_pure_functions_of_seed_and_step(tmp_path):
    root = _folder(tmp_path, count=6)
    a, b = AudioFolderDataset(root, 1024, RATE, 2, seed=3), AudioFolderDataset(root, 1024, RATE, 2, seed=3)
    batch = a.batch(4, 3)
    assert batch.shape == (3, 2, 1024) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch, b.batch(4, 3))
    assert not np.array_equal(batch, a.batch(5, 3))
    assert not np.array_equal(batch, AudioFolderDataset(root, 1024, RATE, 2, seed=4).batch(4, 3))
    orders = []
    for epoch in range(2):  # each epoch is a permutation of the files
        paths = [a.batch_item(s, p, 3)[1]["path"] for s in range(2 * epoch, 2 * epoch + 2) for p in range(3)]
        assert sorted(paths) == [str(f) for f in a.files]
        orders.append(paths)
    assert orders[0] != orders[1]


def test_negative_steps_give_fixed_batches_apart_from_training(tmp_path):
    root = _folder(tmp_path, count=6)
    ds = AudioFolderDataset(root, 1024, RATE, 2, seed=3)
    demo = ds.batch(-1, 4)
    np.testing.assert_array_equal(demo, AudioFolderDataset(root, 1024, RATE, 2, seed=3).batch(-1, 4))
    assert demo.shape == (4, 2, 1024) and not np.array_equal(demo, ds.batch(-2, 4))
    assert all(not np.array_equal(demo[0], ds.batch(step, 1)[0]) for step in range(12))


def test_resumed_loader_sees_the_batches_of_an_uninterrupted_run(tmp_path):
    root = _folder(tmp_path, count=5)
    (root / "broken.wav").write_bytes(b"RIFF" + bytes(50))  # found at different steps by the two runs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedAudioWarning)
        with BackgroundLoader(AudioFolderDataset(root, 800, RATE, 2, seed=1), 2, start_step=0) as full:
            first = [next(full) for _ in range(10)]
        with BackgroundLoader(AudioFolderDataset(root, 800, RATE, 2, seed=1), 2, start_step=5) as resumed:
            second = [next(resumed) for _ in range(5)]
            assert resumed.next_step == 10
    for a, b in zip(first[5:], second):
        np.testing.assert_array_equal(a, b)


def _hostile(root):
    """Broken files under ``root``; returns {name: text its warning must hold}."""
    root.mkdir(exist_ok=True)
    (root / "garbage.wav").write_bytes(np.random.default_rng(0).bytes(3000))
    good = _write(root / "tmp.wav", _noise(2, 2000)).read_bytes()
    (root / "tmp.wav").unlink()
    (root / "cut_header.wav").write_bytes(good[:30])
    nan = _noise(2, 1000)
    nan[1, 500] = np.nan
    _write(root / "nan.wav", nan)
    one_hz = bytearray(good)
    struct.pack_into("<II", one_hz, one_hz.index(b"fmt ") + 12, 1, 8)  # sample rate, bytes per second
    (root / "one_hz.wav").write_bytes(bytes(one_hz))
    _write(root / "silent.flac", np.zeros((1, 3000), np.float32), subtype="PCM_16")
    (root / "x.wav").mkdir()  # a folder with an audio name is searched, not read
    os.symlink("loop.wav", root / "loop.wav")
    return {"garbage.wav": "not a readable audio file", "cut_header.wav": "not a readable audio file",
            "nan.wav": "sample 500 of channel 1", "one_hz.wav": "sample rate 1 Hz",
            "silent.flac": "silent throughout"}


def test_hostile_files_are_skipped_once_with_a_warning_naming_them(tmp_path, monkeypatch):
    expected = _hostile(tmp_path)
    _folder(tmp_path, count=3)
    with pytest.warns(SkippedAudioWarning, match="loop.wav"):
        ds = AudioFolderDataset(tmp_path, 1000, RATE, 2, seed=0)
    assert len(ds) == 8
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batches = [ds.batch(step, 4) for step in range(2)]  # one epoch: every file is tried
    messages = [str(w.message) for w in caught if issubclass(w.category, SkippedAudioWarning)]
    assert len(messages) == len(expected)
    for name, reason in expected.items():
        assert [m for m in messages if str(tmp_path / name) in m and reason in m], (name, messages)
    assert set(ds.skipped) == {str(tmp_path / name) for name in expected}
    assert all(np.isfinite(b).all() and np.abs(b).max() > 0.01 for b in batches)
    reads, read = [], audio_folder.read_audio
    monkeypatch.setattr(audio_folder, "read_audio", lambda path: reads.append(path.name) or read(path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for step in range(2, 6):
            ds.batch(step, 4)
    assert set(reads) == {"f0.wav", "f1.wav", "f2.wav"}


def test_a_file_cut_short_in_its_data_is_used_with_a_warning(tmp_path):
    data = _write(tmp_path / "cut.wav", _noise(2, 4000)).read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[:len(data) // 2])
    ds = AudioFolderDataset(tmp_path, 4000, RATE, 2, random_crop=False)
    with pytest.warns(TruncatedAudioWarning, match="cut.wav"):
        _, info = ds.item(0, np.random.default_rng(0))
    assert 1900 < info["padding_mask"].sum() < 2000 and not ds.skipped


def test_silent_chunks_are_replaced_by_the_next_file(tmp_path):
    quiet_start = np.concatenate([np.zeros((1, 2000)), _noise(1, 2000)], axis=1).astype(np.float32)
    _write(tmp_path / "a.wav", quiet_start)
    _write(tmp_path / "b.wav", _noise(1, 2000, seed=5))
    ds = AudioFolderDataset(tmp_path, 1000, RATE, 1, random_crop=False, augment_phase=False)
    assert ds.item(0, np.random.default_rng(0))[1]["relpath"] == "b.wav" and not ds.skipped
    keep = AudioFolderDataset(tmp_path, 1000, RATE, 1, random_crop=False, skip_silence=False)
    assert keep.item(0, np.random.default_rng(0))[1]["relpath"] == "a.wav"


def test_a_folder_of_only_bad_files_raises_naming_it_also_through_the_loader(tmp_path):
    _hostile(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedAudioWarning)
        ds = AudioFolderDataset(tmp_path, 1000, RATE, 2)
        with pytest.raises(ValueError, match=f"no usable audio files under {tmp_path}"):
            ds.batch(0, 2)
        loader = BackgroundLoader(AudioFolderDataset(tmp_path, 1000, RATE, 2), 2)
        with pytest.raises(ValueError, match=f"no usable audio files under {tmp_path}") as info:
            next(loader)
    assert any("step 0" in note for note in info.value.__notes__)
    with pytest.raises(StopIteration):
        next(loader)


class _Steps:
    """A dataset stand-in: items hold their step number; step ``fail`` raises."""

    def __init__(self, fail=None, delay=0.0):
        self.fail, self.delay = fail, delay

    def batch_item(self, step, position, batch_size):
        time.sleep(self.delay)
        if step == self.fail:
            raise KeyError(f"no item at step {step}")
        return np.full((1, 4), step, np.float32), {}


def test_loader_delivers_in_order_then_reraises_the_worker_error():
    loader = BackgroundLoader(_Steps(fail=3), 2, start_step=1)
    b1, b2 = next(loader), next(loader)
    assert (b1 == 1).all() and (b2 == 2).all() and b1.shape == (2, 1, 4) and loader.next_step == 3
    with pytest.raises(KeyError, match="no item at step 3"):
        next(loader)
    assert not loader._thread.is_alive()


def test_loader_closes_promptly_with_a_full_queue():
    with BackgroundLoader(_Steps(delay=0.001), 1, prefetch=1) as loader:
        assert (next(loader) == 0).all()
        deadline = time.monotonic() + 5
        while not loader._queue.full() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert loader._queue.full() and loader._thread.daemon
        start = time.monotonic()
    assert time.monotonic() - start < 0.5 and not loader._thread.is_alive()
    with pytest.raises(StopIteration):
        next(loader)


@settings(max_examples=200, deadline=None)
@given(frames=st.integers(1, 400), size=st.integers(1, 400), channels=st.integers(1, 3),
       seed=st.integers(0, 2**32 - 1))
def test_any_length_gives_the_right_shape_and_a_consistent_mask(frames, size, channels, seed):
    audio = np.arange(1, frames + 1, dtype=np.float32)[None].repeat(channels, 0)
    offset = random_offset(frames, size, np.random.default_rng(seed))
    chunk, info = pad_crop(audio, size, 100, offset)
    kept = min(frames, size)
    assert chunk.shape == (channels, size) and 0 <= offset <= max(0, frames - size)
    np.testing.assert_array_equal(info["padding_mask"], np.arange(size) < kept)
    np.testing.assert_array_equal(chunk[:, :kept], audio[:, offset:offset + kept])
    assert not chunk[:, kept:].any() and info["seconds_total"] == -(-frames // 100)
    assert info["timestamps"][1] - info["timestamps"][0] == pytest.approx(size / max(frames, size))
