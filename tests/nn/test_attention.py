"""scaled_dot_product_attention (the fused ``attention`` op) against PyTorch's: values for every
kind of mask and for odd sizes, gradients for query, key, value and a float bias, fully masked
queries, and a finite-difference check.

Tolerances: float64 results within 1e-12 of PyTorch's float64 (absolute, on values of order
one); float32 results no further from PyTorch's float64 than twice PyTorch's own float32 result
is (with a floor of 2 float32 ulps of the largest value, for cases PyTorch computes exactly).
Runs on the default device (``--device interp`` runs it on the interpreter).
"""
from __future__ import annotations

import numpy as np
import pytest

import audiograd as ag
from audiograd.nn.functional import scaled_dot_product_attention as sdpa

torch = pytest.importorskip("torch", reason="PyTorch is the reference")
TF = torch.nn.functional

# (name, query shape, key shape, value shape, mask shape or None, mask kind)
CASES = [
    ("self no mask", (2, 3, 70, 16), (2, 3, 70, 16), (2, 3, 70, 16), None, None),
    ("cross", (2, 3, 70, 16), (2, 3, 13, 16), (2, 3, 13, 8), None, None),
    ("t5 bias shared over batch", (2, 4, 33, 8), (2, 4, 33, 8), (2, 4, 33, 8), (1, 4, 33, 33), "float"),
    ("bias per batch", (2, 4, 33, 8), (2, 4, 33, 8), (2, 4, 33, 8), (2, 4, 33, 33), "float"),
    ("key padding", (3, 2, 21, 8), (3, 2, 30, 8), (3, 2, 30, 8), (3, 1, 1, 30), "bool"),
    ("bool full", (2, 2, 19, 8), (2, 2, 19, 8), (2, 2, 19, 8), (19, 19), "bool"),
    ("float row bias", (2, 3, 9, 8), (2, 3, 11, 8), (2, 3, 11, 8), (1, 1, 9, 1), "float"),
    ("mask over outer and inner dims", (2, 3, 2, 7, 4), (2, 3, 2, 7, 4), (2, 3, 2, 7, 4), (2, 1, 2, 7, 7), "float"),
    ("broadcast key and value", (2, 3, 10, 8), (1, 1, 12, 8), (1, 1, 12, 8), None, None),
    ("3-d", (5, 17, 8), (5, 9, 8), (5, 9, 8), (5, 17, 9), "bool"),
    ("Lq 1", (2, 2, 1, 16), (2, 2, 40, 16), (2, 2, 40, 16), None, None),
    ("Lk 1", (2, 2, 40, 16), (2, 2, 1, 16), (2, 2, 1, 16), None, None),
    ("L not a multiple of the block", (1, 2, 200, 8), (1, 2, 200, 8), (1, 2, 200, 8), (1, 2, 200, 200), "float"),
    ("D 1", (2, 2, 9, 1), (2, 2, 11, 1), (2, 2, 11, 1), None, None),
    ("D 65", (1, 2, 30, 65), (1, 2, 30, 65), (1, 2, 30, 65), None, None),
]


def _inputs(qs, ks, vs, ms, kind, dtype, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(dtype) for s in (qs, ks, vs)]
    mask = None
    if kind == "float":
        mask = rng.standard_normal(ms).astype(dtype)
    elif kind == "bool":
        mask = rng.random(ms) > 0.3
        mask[..., 0] = True   # no fully masked row here (tested on its own)
    return arrays, mask


def _torch(arrays, mask, dtype, scale=None, grad=False):
    ts = [torch.tensor(a, dtype=dtype, requires_grad=grad) for a in arrays]
    m = None if mask is None else torch.tensor(mask, dtype=torch.bool if mask.dtype == bool else dtype)
    return ts, m, TF.scaled_dot_product_attention(*ts, attn_mask=m, scale=scale)


def _ours(arrays, mask, dtype, scale=None, grad=False):
    ts = [ag.tensor(a, dtype=dtype, requires_grad=grad) for a in arrays]
    m = None if mask is None else ag.tensor(mask, dtype=None if mask.dtype == bool else dtype)
    return ts, m, sdpa(*ts, attn_mask=m, scale=scale)


@pytest.mark.parametrize("name,qs,ks,vs,ms,kind", CASES, ids=[c[0] for c in CASES])
def test_forward_matches_torch(name, qs, ks, vs, ms, kind):
    arrays, mask = _inputs(qs, ks, vs, ms, kind, np.float64)
    ref = _torch(arrays, mask, torch.float64)[2].numpy()
    out = _ours(arrays, mask, ag.float64)[2]
    assert out.node.base.op == "attention", "the fused op computes it"
    got = out.numpy()
    assert got.shape == ref.shape and got.dtype == np.float64
    err64 = np.abs(got - ref).max()
    assert err64 <= 1e-12, f"float64 error {err64:.3g}"

    a32 = [a.astype(np.float32) for a in arrays]
    m32 = mask if mask is None or mask.dtype == bool else mask.astype(np.float32)
    torch_err = np.abs(_torch(a32, m32, torch.float32)[2].numpy().astype(np.float64) - ref).max()
    got32 = _ours(a32, m32, ag.float32)[2].numpy()
    assert got32.dtype == np.float32
    err32 = np.abs(got32.astype(np.float64) - ref).max()
    floor = 2 * np.finfo(np.float32).eps * np.abs(ref).max()
    assert err32 <= max(2 * torch_err, floor), f"float32 error {err32:.3g}, torch's {torch_err:.3g}"


def test_scale_argument():
    arrays, _ = _inputs((2, 2, 11, 8), (2, 2, 13, 8), (2, 2, 13, 8), None, None, np.float64)
    ref = _torch(arrays, None, torch.float64, scale=0.37)[2].numpy()
    assert np.abs(_ours(arrays, None, ag.float64, scale=0.37)[2].numpy() - ref).max() <= 1e-12


GRAD_CASES = [c for c in CASES if c[0] in ("cross", "t5 bias shared over batch", "bias per batch", "key padding",
                                             "float row bias", "mask over outer and inner dims",
                                             "broadcast key and value", "L not a multiple of the block", "D 65")]


@pytest.mark.parametrize("name,qs,ks,vs,ms,kind", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_gradients_match_torch(name, qs, ks, vs, ms, kind):
    arrays, mask = _inputs(qs, ks, vs, ms, kind, np.float64, seed=1)
    bias_grad = kind == "float"
    tins, tm, tout = _torch(arrays, mask, torch.float64, grad=True)
    if bias_grad:
        tm.requires_grad_(True)
        tout = TF.scaled_dot_product_attention(*tins, attn_mask=tm)
    w = np.random.default_rng(2).standard_normal(tout.shape)
    (tout * torch.tensor(w)).sum().backward()
    ins, m, _ = _ours(arrays, mask, ag.float64, grad=True)
    if bias_grad:
        m = ag.tensor(mask, dtype=ag.float64, requires_grad=True)
    out = sdpa(*ins, attn_mask=m)
    (out * ag.tensor(w)).sum().backward()
    pairs = list(zip(("query", "key", "value"), ins, tins)) + ([("bias", m, tm)] if bias_grad else [])
    for what, ours, ref in pairs:
        err = np.abs(ours.grad.numpy() - ref.grad.numpy()).max()
        assert err <= 1e-11, f"{what} gradient error {err:.3g}"


def test_fully_masked_queries_give_zeros_like_torch():
    arrays, _ = _inputs((2, 2, 5, 4), (2, 2, 6, 4), (2, 2, 6, 4), None, None, np.float64)
    mask = np.ones((2, 1, 5, 6), bool)
    mask[0, :, 2] = False
    mask[1, :, 4] = False
    fmask = np.where(mask, 0.0, -np.inf)
    for m in (mask, fmask):
        tins, _, tout = _torch(arrays, m, torch.float64, grad=True)
        tout.sum().backward()
        ins, _, out = _ours(arrays, m, ag.float64, grad=True)
        out.sum().backward()
        got = out.numpy()
        assert np.all(got[0, :, 2] == 0) and np.all(got[1, :, 4] == 0)
        assert np.abs(got - tout.detach().numpy()).max() <= 1e-12
        for ours, ref in zip(ins, tins):
            assert np.isfinite(ours.grad.numpy()).all()
            assert np.abs(ours.grad.numpy() - ref.grad.numpy()).max() <= 1e-12


def test_gradients_by_finite_differences():
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal(s) for s in ((1, 2, 3, 4), (1, 2, 5, 4), (1, 2, 5, 3), (1, 2, 3, 5))]
    w = rng.standard_normal((1, 2, 3, 3))

    def loss(xs, grad=False):
        ts = [ag.tensor(x, dtype=ag.float64, requires_grad=grad) for x in xs]
        val = (sdpa(*ts[:3], attn_mask=ts[3]) * ag.tensor(w)).sum()
        return ts, val

    ts, val = loss(arrays, grad=True)
    val.backward()
    h = 1e-6
    for i, a in enumerate(arrays):
        analytic = ts[i].grad.numpy()
        numeric = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            up = [x.copy() for x in arrays]
            down = [x.copy() for x in arrays]
            up[i][idx] += h
            down[i][idx] -= h
            numeric[idx] = (loss(up)[1].item() - loss(down)[1].item()) / (2 * h)
        assert np.abs(analytic - numeric).max() <= 1e-7, f"input {i}"


def test_bad_inputs_get_one_clear_error():
    q = ag.tensor(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ag.ShapeError, match="last dim"):
        sdpa(q, ag.tensor(np.zeros((2, 3, 5), np.float32)), ag.tensor(np.zeros((2, 3, 5), np.float32)))
    with pytest.raises(ag.ShapeError, match="length"):
        sdpa(q, q, ag.tensor(np.zeros((2, 4, 4), np.float32)))
    with pytest.raises(ag.ShapeError, match="attn_mask"):
        sdpa(q, q, q, attn_mask=ag.tensor(np.zeros((3, 4), bool)))
    with pytest.raises(TypeError, match="dtype"):
        sdpa(q, q, ag.tensor(np.zeros((2, 3, 4), np.float64)))
