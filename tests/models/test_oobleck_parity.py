"""audiograd's Oobleck encoder/decoder/VAE against stable-audio-tools' original classes.

The reference (stable-audio-tools, float64) gets seeded random weights; its state dict is loaded
into audiograd's modules unchanged (no key renaming). Errors are max abs / RMS of the reference
output. The module is skipped, with the reason, when stable-audio-tools cannot be imported.
"""
import numpy as np
import pytest

import audiograd
from audiograd.models.oobleck import OobleckDecoder, OobleckEncoder, OobleckVAE

import sat_reference as sr

REF = sr.require_reference()
torch = REF.torch

# SAO 1.0 parameter counts (encoder, decoder) from the released checkpoint's key list
SAO_PARAMS = {"encoder": 77_989_888, "decoder": 78_122_626}
TOL32 = {"small": 1e-5, "sao": 3e-5}
TOL64 = 1e-10
LENGTH = {"decoder": 3, "encoder": 4096}  # SAO: 3 latents -> 6144 samples; 4096 samples -> 2 latents


def _ag_module(name, part, dtype="float32"):
    cls = OobleckEncoder if part == "encoder" else OobleckDecoder
    m = cls(**sr.config(name)[part]["config"])
    m.load_state_dict(sr.reference_state(name, part))
    return m.to(getattr(audiograd, dtype)).eval()


def _run(module, x, dtype="float32"):
    with audiograd.no_grad():
        return module(audiograd.Tensor(np.asarray(x, getattr(audiograd, dtype).np))).numpy()


def _check(name, part, dtype, length=None, seed=0):
    x = sr.make_input(name, part, length or (LENGTH[part] if name == "sao" else None), seed=seed)
    ref = sr.reference_forward(name, part, x)
    out = _run(_ag_module(name, part, dtype), x, dtype)
    d, rms, rel = sr.rel_error(out, ref)
    base = sr.rel_error(sr.reference_forward(name, part, x, dtype=torch.float32), ref)[2] if dtype == "float32" else 0
    print(f"\n{name} {part} {dtype} out {out.shape}: max abs {d:.3e}, RMS {rms:.3e}, max abs / RMS {rel:.3e}"
          + (f" (PyTorch float32: {base:.3e})" if base else ""))
    assert np.isfinite(out).all()
    assert rms > 1e-3, "reference output is degenerate: the random weights are badly scaled"
    tol = TOL64 if dtype == "float64" else TOL32["sao" if name == "sao" else "small"]
    assert rel < tol, f"{name} {part} {dtype}: max abs {d:.3e} / RMS {rms:.3e} = {rel:.3e} >= {tol:g}"


def _cases(slow_sao=()):
    """Small configs, then SAO 1.0's encoder and decoder (those in ``slow_sao`` marked slow)."""
    cases = [(n, p) for n in sr.SMALL for p in ("encoder", "decoder")]
    sao = [pytest.param("sao", p, marks=pytest.mark.slow) if p in slow_sao else ("sao", p) for p in ("encoder", "decoder")]
    return cases + sao


# ---- structure ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name,part", _cases())
def test_state_dict_keys_and_shapes_match_reference(name, part):
    cls = OobleckEncoder if part == "encoder" else OobleckDecoder
    ag = cls(**sr.config(name)[part]["config"]).state_dict()
    ref = sr.reference_module(name, part).state_dict()
    assert list(ag) == list(ref)
    bad = [k for k in ref if tuple(ag[k].shape) != tuple(ref[k].shape)]
    assert not bad, f"shapes differ for {bad}"
    if name == "sao":
        assert sum(int(np.prod(v.shape)) for v in ref.values()) == SAO_PARAMS[part]
        assert sum(int(np.prod(v.shape)) for v in ag.values()) == SAO_PARAMS[part]


@pytest.mark.parametrize("name,part", [(n, p) for n in sr.SMALL for p in ("encoder", "decoder")])
def test_loaded_weights_read_back_unchanged(name, part):
    """Every tensor reads back as loaded (catches parameters that share one buffer)."""
    state = sr.reference_state(name, part)
    got = _ag_module(name, part, "float64").state_dict()
    wrong = [k for k in state if not np.array_equal(got[k].numpy(), state[k])]
    assert not wrong, f"tensors that do not read back as loaded: {wrong}"


# ---- forward parity -----------------------------------------------------------------------------
@pytest.mark.parametrize("name,part", _cases(slow_sao=("encoder",)))  # ~12 s each at SAO size
def test_float32_parity(name, part):
    _check(name, part, "float32")


@pytest.mark.parametrize("name,part", _cases(slow_sao=("encoder", "decoder")))
def test_float64_parity(name, part):
    _check(name, part, "float64")


@pytest.mark.parametrize("name", sr.SMALL)
def test_batch_and_longer_inputs(name):
    """Batch 2 and a length that is not a multiple of the downsampling ratio."""
    x = sr.make_input(name, "encoder", length=1000, seed=3, batch=2)
    ref = sr.reference_forward(name, "encoder", x)
    d, rms, rel = sr.rel_error(_run(_ag_module(name, "encoder"), x), ref)
    assert rel < TOL32["small"], (d, rms)
    z = sr.make_input(name, "decoder", length=7, seed=4, batch=2)
    ref = sr.reference_forward(name, "decoder", z)
    d, rms, rel = sr.rel_error(_run(_ag_module(name, "decoder"), z), ref)
    assert rel < TOL32["small"], (d, rms)


# ---- VAE ----------------------------------------------------------------------------------------
def _vae(name, dtype="float64"):
    vae = OobleckVAE(sr.config(name))
    vae.encoder.load_state_dict(sr.reference_state(name, "encoder"))
    vae.decoder.load_state_dict(sr.reference_state(name, "decoder"))
    return vae.to(getattr(audiograd, dtype)).eval()


def _np(t):
    return t.numpy() if isinstance(t, audiograd.Tensor) else np.asarray(t)


@pytest.mark.parametrize("name", ["snake_odd", "elu_mono"])
def test_vae_encode_mean_is_reference_mean(name):
    x = sr.make_input(name, "encoder", length=1200, seed=5)
    mean_ref, _ = torch.from_numpy(sr.reference_forward(name, "encoder", x)).chunk(2, dim=1)
    vae = _vae(name)
    for audio in (x, audiograd.Tensor(x)):  # numpy or Tensor input
        d, rms, rel = sr.rel_error(_np(vae.encode(audio)), mean_ref.numpy())
        assert rel < TOL64, (d, rms)


@pytest.mark.parametrize("name", ["snake_odd", "elu_mono"])
def test_vae_decode_matches_reference_decoder(name):
    z = sr.make_input(name, "decoder", length=5, seed=6)
    ref = sr.reference_forward(name, "decoder", z)
    d, rms, rel = sr.rel_error(_np(_vae(name).decode(z)), ref)
    assert rel < TOL64, (d, rms)
    d, rms, rel = sr.rel_error(_np(_vae(name, "float32").decode(z.astype(np.float32))), ref)
    assert rel < TOL32["small"], (d, rms)


def test_vae_sampling_is_seeded_and_has_the_posterior_statistics():
    name = "snake_wide"
    x = sr.make_input(name, "encoder", length=32 * 400, seed=7)
    enc = torch.from_numpy(sr.reference_forward(name, "encoder", x))
    mean, scale = enc.chunk(2, dim=1)
    std = torch.nn.functional.softplus(scale) + 1e-4
    vae = _vae(name)
    a, b = _np(vae.encode(x, sample=True, seed=11)), _np(vae.encode(x, sample=True, seed=11))
    c = _np(vae.encode(x, sample=True, seed=12))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert a.shape == mean.shape
    noise = (a - mean.numpy()) / std.numpy()  # must be standard normal if std = softplus(scale) + 1e-4
    assert noise.size >= 3000
    assert abs(noise.mean()) < 0.08 and abs(noise.std() - 1) < 0.06, (noise.mean(), noise.std())
    assert not np.allclose(_np(vae.encode(x, sample=True)), a)  # unseeded sampling still samples
    np.testing.assert_array_equal(_np(vae.encode(x)), _np(vae.encode(x, sample=False, seed=11)))


def test_vae_kl_matches_reference_bottleneck():
    name = "snake_odd"
    x = sr.make_input(name, "encoder", length=900, seed=8)
    enc = sr.reference_forward(name, "encoder", x)
    _, info = sr.reference_bottleneck().encode(torch.from_numpy(enc), return_info=True)
    vae = _vae(name)
    _, kl = vae.bottleneck.encode(audiograd.Tensor(enc), return_kl=True)
    np.testing.assert_allclose(float(_np(kl)), float(info["kl"]), rtol=1e-10)


def test_vae_rejects_wrong_input_shapes():
    vae = _vae("snake_odd")
    with pytest.raises(ValueError):
        vae.encode(np.zeros((2, 1000)))
    with pytest.raises(ValueError):
        vae.encode(np.zeros((1, 3, 1000)))  # 3 channels, the encoder takes 2
