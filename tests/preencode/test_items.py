"""One item's audio and metadata against stable-audio-tools' audio-folder loader and pre_encode.py's rules."""
import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from audiograd.preencode.items import SilentAudio, fit_channels, latent_padding_mask, load_item, pad_crop
from sat_dataset import SAMPLE_RATE, sample_dataset, sat_data_utils, sat_dataset, write_dataset

torch = pytest.importorskip("torch", reason="PyTorch is the reference of these tests")


def _reference_mask(audio_samples: int, sample_size: int, frames: int) -> list:
    """pre_encode.py's rule: the sample-rate mask resized to the latents with nearest interpolation."""
    mask = torch.zeros(sample_size)
    mask[:audio_samples] = 1
    return torch.nn.functional.interpolate(mask[None, None], size=frames, mode="nearest").squeeze(0).squeeze(0) \
        .int().tolist()


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 5000), size=st.integers(1, 5000), ratio=st.sampled_from([1, 2, 7, 8, 64, 2048]))
def test_pad_crop_and_mask_match_stable_audio_tools(n, size, ratio):
    utils = sat_data_utils()
    frames = max(1, size // ratio)
    audio = np.random.default_rng(n).standard_normal((2, n)).astype(np.float32)
    ours, meta = pad_crop(audio, 1000, size)
    chunk, t_start, t_end, seconds_start, seconds_total, mask = \
        utils.PadCrop_Normalized_T(size, 1000, randomize=False)(torch.from_numpy(audio))
    np.testing.assert_array_equal(ours, chunk.numpy())
    assert meta["timestamps"] == [t_start, t_end]
    assert (meta["seconds_start"], meta["seconds_total"]) == (seconds_start, seconds_total)
    assert meta["audio_samples"] == int(mask.sum())
    assert latent_padding_mask(meta["audio_samples"], size, frames) == _reference_mask(int(mask.sum()), size, frames)


@pytest.mark.parametrize("have,want", [(1, 2), (2, 2), (3, 2), (6, 2), (2, 1), (1, 1)])
def test_channels_follow_stable_audio_tools(have, want):
    utils = sat_data_utils()
    audio = np.random.default_rng(have).standard_normal((have, 50)).astype(np.float32)
    reference = (utils.Stereo() if want == 2 else utils.Mono())(torch.from_numpy(audio)).numpy()
    np.testing.assert_allclose(fit_channels(audio, want), reference, rtol=1e-6, atol=1e-7)


def test_items_and_metadata_equal_stable_audio_tools_loader(tmp_path):
    """Audio and every metadata field (but the load time) as SampleDataset + pre_encode.py give them."""
    files = write_dataset(tmp_path, broken=False)
    size, frames = 16384, 16384 // 8
    reference = sample_dataset(tmp_path, size)
    assert sorted(reference.filenames) == sorted(str(tmp_path / rel) for rel in files["good"])
    for index, filename in enumerate(reference.filenames):
        ref_audio, ref_info = reference[index]
        rel = filename[len(str(tmp_path)) + 1:]
        audio, meta, notes = load_item(filename, rel, SAMPLE_RATE, 2, size)
        np.testing.assert_array_equal(audio, ref_audio.numpy())
        meta["padding_mask"] = latent_padding_mask(meta.pop("audio_samples"), size, frames)
        expected = dict(ref_info, padding_mask=_reference_mask(int(ref_info["padding_mask"].sum()), size, frames))
        expected = json.loads(json.dumps(expected))   # as pre_encode.py writes it (tuples become lists)
        assert set(meta) == set(expected)
        for key in set(expected) - {"load_time"}:
            assert meta[key] == expected[key], key
        assert notes == []


def test_silent_and_loud_items(tmp_path):
    import soundfile as sf
    sf.write(tmp_path / "quiet.wav", np.full((500, 2), 5e-4, np.float32), SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(SilentAudio, match="quiet.wav: silent"):
        load_item(str(tmp_path / "quiet.wav"), "quiet.wav", SAMPLE_RATE, 2, 1024)
    sf.write(tmp_path / "loud.wav", np.full((500, 1), 3.0, np.float32), SAMPLE_RATE, subtype="FLOAT")
    audio, meta, _ = load_item(str(tmp_path / "loud.wav"), "loud.wav", SAMPLE_RATE, 2, 1024)
    assert audio.shape == (2, 1024) and audio.max() == 1.0      # clamped, as the reference loader does
    assert meta["audio_samples"] == 500 and meta["seconds_total"] == 1


def test_resampled_item_length(tmp_path):
    import soundfile as sf
    sf.write(tmp_path / "low.wav", np.full((2205, 1), 0.1, np.float32), 22050)
    audio, meta, _ = load_item(str(tmp_path / "low.wav"), "low.wav", SAMPLE_RATE, 2, None)
    assert audio.shape == (2, 4410) and meta["audio_samples"] == 4410 and meta["timestamps"] == [0.0, 1.0]


def test_reference_helper_imports():
    assert hasattr(sat_dataset(), "PreEncodedDataset")
