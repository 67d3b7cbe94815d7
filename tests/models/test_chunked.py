"""Chunked encode/decode equals whole-file processing on a small random-weight Oobleck model."""
import json

import numpy as np
import pytest

import audiograd
from audiograd.models.chunked import decode_chunked, encode_chunked, receptive_field
from audiograd.models.oobleck import SAO_CONFIG, OobleckVAE
from oobleck_configs import TINY

# the bound documented in audiograd/models/chunked.py (measured: 5e-7 encoder, 3e-7 decoder)
REL_BOUND = 1e-5

LENGTH = 1602  # 200 latents and 2 trailing samples
CHUNK = 32     # latents per chunk: 7 chunks
# Every new tensor length compiles new kernels (seconds), so the tests reuse a few lengths:
# windows of 32 + 2 * 18 latents (encoder) and 32 + 2 * 21 latents (decoder), and the whole file.


@pytest.fixture(scope="module")
def model():
    audiograd.manual_seed(0)
    return OobleckVAE(TINY)


@pytest.fixture(scope="module")
def audio():
    return (0.3 * np.random.default_rng(0).standard_normal((1, 2, LENGTH))).astype(np.float32)


@pytest.fixture(scope="module")
def latents():
    return np.random.default_rng(1).standard_normal((1, 8, LENGTH // 8)).astype(np.float32)


def _rel(a, b):
    return float(np.abs(a - b).max() / np.sqrt(np.mean(b.astype(np.float64) ** 2)))


def _thin(config):
    """``config`` with one channel per layer: the same receptive field, built quickly."""
    thin = json.loads(json.dumps(config))
    for part in ("encoder", "decoder"):
        c = thin[part]["config"]
        c["channels"], c["c_mults"] = 1, [1] * len(c["c_mults"])
    thin["encoder"]["config"]["latent_dim"] = 2
    thin["decoder"]["config"]["latent_dim"] = thin["latent_dim"] = 1
    return thin


def test_receptive_field_of_small_and_sao_models(model):
    assert receptive_field(model) == (18, 21)
    assert receptive_field(OobleckVAE(_thin(SAO_CONFIG))) == (9, 12)


def test_chunked_encode_matches_whole_file(model, audio):
    with audiograd.no_grad():
        whole = model.encode(audio).numpy()
    calls = []
    chunked = encode_chunked(model, audio, chunk_samples=CHUNK * 8, progress=lambda d, t: calls.append((d, t)))
    assert chunked.shape == whole.shape == (1, 8, LENGTH // 8)
    assert chunked.dtype == np.float32
    rel = _rel(chunked, whole)
    print(f"encoder chunked vs whole: max |diff| / RMS = {rel:.2e}")
    assert rel < REL_BOUND
    stages = len(model.encoder.layers)
    assert calls == [(i, 7 * stages) for i in range(7 * stages + 1)]  # every stage of all 7 chunks


def test_chunked_decode_matches_whole_file(model, latents):
    with audiograd.no_grad():
        whole = model.decode(latents).numpy()
    chunked = decode_chunked(model, latents, chunk=CHUNK)
    assert chunked.shape == whole.shape == (1, 2, (LENGTH // 8) * 8)
    rel = _rel(chunked, whole)
    print(f"decoder chunked vs whole: max |diff| / RMS = {rel:.2e}")
    assert rel < REL_BOUND


def test_margin_below_receptive_field_shows_seams(model, latents):
    whole = decode_chunked(model, latents, chunk=CHUNK)  # exact, and already compiled
    rf = receptive_field(model)[1]
    # the same window length as above (so no new kernels), but only 2 latents of context
    assert _rel(decode_chunked(model, latents, chunk=CHUNK + 2 * (rf - 2), margin=2), whole) > 1e-3


def test_sampled_latents_match_model_sampling(model, audio):
    with audiograd.no_grad():
        whole = model.encode(audio, sample=True, seed=7).numpy()
    chunked = encode_chunked(model, audio, chunk_samples=CHUNK * 8, sample=True, seed=7)
    assert _rel(chunked, whole) < REL_BOUND
    other = encode_chunked(model, audio, chunk_samples=CHUNK * 8, sample=True, seed=8)
    assert _rel(other, whole) > 1e-2


def test_single_chunk_and_short_input(model, audio):
    with audiograd.no_grad():
        whole = model.encode(audio).numpy()
    # one chunk bigger than the input: the whole file in one window
    assert _rel(encode_chunked(model, audio, chunk_samples=4096), whole) < REL_BOUND
    assert encode_chunked(model, audio[:, :, :7]).shape == (1, 8, 0)


def test_argument_errors(model, audio, latents):
    with pytest.raises(ValueError, match="multiple of the downsampling ratio 8"):
        encode_chunked(model, audio, chunk_samples=100)
    with pytest.raises(ValueError, match="1 channels, the encoder expects 2"):
        encode_chunked(model, audio[:, :1])
    with pytest.raises(ValueError, match="expected \\(batch, channels, time\\)"):
        encode_chunked(model, audio[0])
    with pytest.raises(ValueError, match="latents have 4 channels, the decoder expects 8"):
        decode_chunked(model, latents[:, :4])
    with pytest.raises(ValueError, match="chunk must be > 0"):
        decode_chunked(model, latents, chunk=0)
    with pytest.raises(ValueError, match="margin must be >= 0"):
        decode_chunked(model, latents, margin=-1)


@pytest.mark.parametrize("part", ["encode", "decode"])
@pytest.mark.parametrize("chunk", [4096, CHUNK])  # one chunk holding the whole input; 7 chunks
def test_progress_counts_stages_and_leaves_output_identical(model, audio, latents, part, chunk):
    """The callback starts at 0 with the final total, then advances once per encoder/decoder
    stage of every chunk; computing stage by stage changes no bit of the output."""
    stack, run = ((model.encoder, lambda **kw: encode_chunked(model, audio, chunk_samples=chunk * 8, **kw))
                  if part == "encode" else
                  (model.decoder, lambda **kw: decode_chunked(model, latents, chunk=chunk, **kw)))
    calls = []
    with_progress = run(progress=lambda done, total: calls.append((done, total)))
    chunks = -(-(LENGTH // 8) // chunk)
    total = chunks * len(stack.layers)
    assert len(stack.layers) >= 4 and calls == [(i, total) for i in range(total + 1)]
    np.testing.assert_array_equal(with_progress, run())


def test_progress_advances_while_the_work_runs(model, audio, monkeypatch):
    """Each report comes after its stage's result exists: the stage outputs computed so far
    are exactly those reported (no batch of reports at the end)."""
    realized = []
    original = audiograd.Tensor.realize

    def counting_realize(self):
        realized.append(1)
        return original(self)
    reports = []
    monkeypatch.setattr(audiograd.Tensor, "realize", counting_realize)
    encode_chunked(model, audio, chunk_samples=4096, progress=lambda d, t: reports.append((d, len(realized))))
    assert [seen for _, seen in reports] == list(range(len(reports)))
