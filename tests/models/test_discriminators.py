"""audiograd's discriminators and adversarial losses against stable-audio-tools' own classes.

The reference gets seeded random weights (weight-normed convolutions as PyTorch initializes
them) and its state dict is loaded into ours unchanged. Inputs are audio-like (sines plus noise,
peak about 0.5). Float64: losses, logits and feature maps to 1e-9 relative (of the reference's
largest value), and the gradients of a mix of the three losses with respect to the real and fake
audio and every discriminator parameter. Float32, against the float64 reference: each loss within
4x PyTorch float32's own error (floor 1e-5 relative); each gradient within 4x PyTorch float32's
error plus 3e-5 of its largest value (a bias gradient sums the whole feature map, and our sums
are less accurate than PyTorch's pairwise ones: 1.4e-5 against 1.5e-6 at worst here).
"""
import numpy as np
import pytest

import audiograd as ag
from audiograd.models import discriminators as ours

from models.sat_discriminator_reference import discriminators

REF = discriminators()
import torch  # noqa: E402  (after the reference check, which skips the module without it)

SAO = dict(filters=64, in_channels=2, n_ffts=[2048, 1024, 512, 256, 128], hop_lengths=[512, 256, 128, 64, 32],
           win_lengths=[2048, 1024, 512, 256, 128])
ENCODEC = {
    "small": dict(filters=8, in_channels=2, n_ffts=[128, 64], hop_lengths=[32, 16], win_lengths=[128, 64]),
    # a window shorter than n_fft, strided frequency axis, other dilations and kernel, magnitude
    # compression, normalized feature matching, mono (the original's filters_scale > 1 or
    # max_filters < filters build convolutions whose channels do not chain)
    "odd": dict(filters=6, in_channels=1, n_ffts=[96], hop_lengths=[24], win_lengths=[80], stride=(1, 2), dilations=[1, 3], kernel_size=(3, 5), spec_scale_pow=0.3,
                normalize_losses=True),
    "sao": SAO,
}
LENGTH = {"small": 1024, "odd": 777, "sao": 4096}
WEIGHTS = (1.0, 0.37, 1.3)  # the gradient checks differentiate dis + 0.37 adv + 1.3 fm


def audio(channels, length, seed, batch=2):
    rng = np.random.default_rng(seed)
    t = np.arange(length) / 44100.0
    f = rng.uniform(60, 8000, size=(batch, channels, 3, 1))
    x = (np.sin(2 * np.pi * f * t) * rng.uniform(0.05, 0.2, size=(batch, channels, 3, 1))).sum(2)
    return x + 0.02 * rng.standard_normal((batch, channels, length))


def _reference(cls_ref, kw, seed, dtype):
    torch.manual_seed(seed)
    ref = cls_ref(**kw).to(dtype)
    ref.rebuild = lambda dt: _reference(cls_ref, kw, seed, dt)  # the same weights in another dtype
    return ref


def _pair(name, cls_ref, cls_ours, kw, seed=0):
    ref = _reference(cls_ref, kw, seed, torch.float64)
    mine = cls_ours(**kw)
    state = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    assert sorted(state) == sorted(mine.state_dict()), f"{name}: state-dict keys differ"
    for k, v in mine.state_dict().items():
        assert tuple(v.shape) == state[k].shape, f"{name}: {k} {tuple(v.shape)} != {state[k].shape}"
    mine.load_state_dict(state)
    return ref, mine.to(ag.float64)


def _rel(out, ref):
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    assert out.shape == ref.shape, f"shape {out.shape} != reference {ref.shape}"
    scale = np.abs(ref).max()
    assert scale > 0, "the reference is all zeros: the comparison would be vacuous"
    return float(np.abs(out - ref).max() / scale)


def _losses(model, reals, fakes, torch_side):
    if torch_side:
        r = torch.tensor(reals, requires_grad=True)
        f = torch.tensor(fakes, requires_grad=True)
    else:
        r = ag.tensor(reals, requires_grad=True)
        f = ag.tensor(fakes, requires_grad=True)
    losses = model.loss(r, f)
    total = sum(w * v for w, v in zip(WEIGHTS, losses))
    total.backward()
    values = [float(v.item()) for v in losses]
    grads = {"reals": r.grad.numpy(), "fakes": f.grad.numpy()}
    for k, p in model.named_parameters():
        grads[k] = p.grad.numpy()
    return values, grads


def _compare_losses(name, ref, mine, reals, fakes, dtype):
    want, want_g = _losses(ref, reals, fakes, True)
    if dtype == "float64":
        got, got_g = _losses(mine, reals, fakes, False)
        for w, g, what in zip(want, got, ("dis", "adv", "fm")):
            assert abs(g - w) <= 1e-9 * abs(w), f"{name} {what}: {g!r} != reference {w!r}"
        for k, w in want_g.items():
            err = _rel(got_g[k], w)
            assert err < 1e-9, f"{name}: gradient of {k} off by {err:.2e} relative"
        return
    ref32 = _losses(ref.rebuild(torch.float32), reals.astype(np.float32), fakes.astype(np.float32), True)
    got, got_g = _losses(mine.to(ag.float32), reals.astype(np.float32), fakes.astype(np.float32), False)
    for i, what in enumerate(("dis", "adv", "fm")):
        ours_err, torch_err = abs(got[i] - want[i]), abs(ref32[0][i] - want[i])
        assert ours_err <= max(4 * torch_err, 1e-5 * abs(want[i])), \
            f"{name} float32 {what}: error {ours_err:.2e} vs PyTorch float32's {torch_err:.2e}"
    for k, w in want_g.items():
        ours_err, torch_err = _rel(got_g[k], w), _rel(ref32[1][k], w)
        assert ours_err <= 4 * torch_err + 3e-5, \
            f"{name} float32 gradient of {k}: {ours_err:.2e} vs PyTorch float32's {torch_err:.2e}"


# ---- EnCodec multi-scale STFT discriminator ----------------------------------------------------
@pytest.mark.parametrize("name", list(ENCODEC))
def test_encodec_forward_matches_reference(name):
    kw = ENCODEC[name]
    ref, mine = _pair(name, REF.EncodecDiscriminator, ours.EncodecDiscriminator, kw)
    x = audio(kw["in_channels"], LENGTH[name], seed=1)
    with torch.no_grad():
        logits_ref, fmaps_ref = ref(torch.tensor(x))
    with ag.no_grad():
        logits, fmaps = mine(ag.tensor(x))
    assert len(logits) == len(logits_ref) == len(kw["n_ffts"])
    for i, (a, b) in enumerate(zip(logits, logits_ref)):
        assert _rel(a.numpy(), b.numpy()) < 1e-9, f"{name} scale {i}: logits differ"
        assert len(fmaps[i]) == len(fmaps_ref[i])
        for j, (fa, fb) in enumerate(zip(fmaps[i], fmaps_ref[i])):
            assert _rel(fa.numpy(), fb.numpy()) < 1e-9, f"{name} scale {i} feature map {j} differs"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ["small", "odd"])
def test_encodec_losses_and_gradients_match_reference(name, dtype):
    kw = ENCODEC[name]
    ref, mine = _pair(name, REF.EncodecDiscriminator, ours.EncodecDiscriminator, kw)
    reals = audio(kw["in_channels"], LENGTH[name], seed=2)
    fakes = reals + 0.05 * audio(kw["in_channels"], LENGTH[name], seed=3)
    _compare_losses(name, ref, mine, reals, fakes, dtype)


@pytest.mark.slow
def test_encodec_sao_losses_and_gradients_match_reference():
    ref, mine = _pair("sao", REF.EncodecDiscriminator, ours.EncodecDiscriminator, SAO)
    reals = audio(2, LENGTH["sao"], seed=2)
    _compare_losses("sao", ref, mine, reals, reals + 0.05 * audio(2, LENGTH["sao"], seed=3), "float64")


# ---- Oobleck discriminator ------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("channels,length", [(1, 600), (2, 1031)])
def test_oobleck_losses_and_gradients_match_reference(channels, length, dtype):
    ref, mine = _pair("oobleck", REF.OobleckDiscriminator, ours.OobleckDiscriminator, dict(in_channels=channels))
    reals = audio(channels, length, seed=4)
    fakes = reals + 0.05 * audio(channels, length, seed=5)
    _compare_losses(f"oobleck {channels}ch", ref, mine, reals, fakes, dtype)


def test_oobleck_scores_and_features_match_reference():
    ref, mine = _pair("oobleck", REF.OobleckDiscriminator, ours.OobleckDiscriminator, dict(in_channels=2))
    reals, fakes = audio(2, 512, seed=6), audio(2, 512, seed=7)
    with torch.no_grad():
        want = ref.multi_discriminator({"reals": torch.tensor(reals), "fakes": torch.tensor(fakes)})
    with ag.no_grad():
        got = mine.multi_discriminator({"reals": ag.tensor(reals), "fakes": ag.tensor(fakes)})
    for key in ("score_reals", "score_fakes"):
        assert _rel(got[key].numpy(), want[key].numpy()) < 1e-9, key
    for key in ("features_reals", "features_fakes"):
        assert len(got[key]) == len(want[key]) == 3 * 5 + 5 * 5
        for j, (a, b) in enumerate(zip(got[key], want[key])):
            assert _rel(a.numpy(), b.numpy()) < 1e-9, f"{key}[{j}]"


def test_hinge_losses_match_reference():
    rng = np.random.default_rng(8)
    real, fake = rng.standard_normal(37) * 2, rng.standard_normal(37) * 2
    want = REF.get_hinge_losses(torch.tensor(real), torch.tensor(fake))
    got = ours.get_hinge_losses(ag.tensor(real), ag.tensor(fake))
    for g, w in zip(got, want):
        assert abs(g.item() - w.item()) <= 1e-12 * abs(w.item())


# ---- finite differences and bad input ------------------------------------------------------------
def test_encodec_input_gradient_matches_finite_differences():
    kw = dict(filters=4, in_channels=1, n_ffts=[32], hop_lengths=[8], win_lengths=[32], dilations=[1])
    mine = ours.EncodecDiscriminator(**kw).to(ag.float64)
    reals, fakes = audio(1, 96, seed=9, batch=1), audio(1, 96, seed=10, batch=1)

    def total(f):
        return sum(w * v for w, v in zip(WEIGHTS, mine.loss(ag.tensor(reals), f)))
    f = ag.tensor(fakes, requires_grad=True)
    total(f).backward()
    rng = np.random.default_rng(11)
    for idx in [tuple(rng.integers(0, s) for s in fakes.shape) for _ in range(6)]:
        eps = 1e-6
        up, down = fakes.copy(), fakes.copy()
        up[idx] += eps
        down[idx] -= eps
        with ag.no_grad():
            numeric = (total(ag.tensor(up)).item() - total(ag.tensor(down)).item()) / (2 * eps)
        assert abs(f.grad.numpy()[idx] - numeric) <= 1e-6 * max(1.0, abs(numeric)), idx


@pytest.mark.parametrize("make,call,message", [
    (lambda: ours.EncodecDiscriminator(**ENCODEC["small"]), lambda m: m.loss(ag.zeros(1, 2, 1024), ag.zeros(1, 2, 900)),
     "differ in shape"),
    (lambda: ours.EncodecDiscriminator(**ENCODEC["small"]), lambda m: m(ag.zeros(1, 1, 1024)), "(batch, 2, time)"),
    (lambda: ours.EncodecDiscriminator(**ENCODEC["small"]), lambda m: m(ag.zeros(1, 2, 100)), "fewer than n_fft"),
    (lambda: ours.OobleckDiscriminator(2), lambda m: m.loss(ag.zeros(1, 2, 64), ag.zeros(2, 2, 64)), "differ in shape"),
])
def test_bad_input_is_named(make, call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(make())


def test_unsupported_options_are_refused():
    with pytest.raises(NotImplementedError, match="rpgan"):
        ours.EncodecDiscriminator(filters=4, loss_type="rpgan")
    with pytest.raises(ValueError, match="activation 'Nope'"):
        ours.DiscriminatorSTFT(4, activation="Nope")
    with pytest.raises(ValueError, match="do not chain"):
        ours.DiscriminatorSTFT(8, filters_scale=2)
    with pytest.raises(ValueError, match="differ in length"):
        ours.MultiScaleSTFTDiscriminator(4, n_ffts=[64, 32], hop_lengths=[16], win_lengths=[64, 32])
