"""Fused attention on the GPU (``devices.cuda.attention``) against PyTorch's
scaled_dot_product_attention: values for each kind of mask, sizes that leave partial tiles,
fully masked queries, gradients, and float32 and float64.

Tolerances as in tests/nn/test_attention.py: float64 within 1e-12 of PyTorch's float64; float32
no further from PyTorch's float64 than twice PyTorch's own float32 result (floor: 2 float32 ulps
of the largest value). The tensor-core kernel (float32 under ``cuda_matmul_precision = "tf32"``)
rounds its operands to TF32 (10-bit mantissa, relative rounding 2**-11): its outputs stay within
4e-3 of PyTorch's float64 relative to the largest output, a few roundings' worth for unit-scale
inputs. Tests marked ``gpu`` need CuPy and an NVIDIA GPU and run with
``pytest --gpu``; the source test compiles the kernels with NVRTC (or nvcc) wherever it can.
"""
import shutil
import subprocess

import numpy as np
import pytest

import audiograd as ag
from audiograd.devices.cuda.attention import attention_source, tiles
from audiograd.devices.cuda.attention_tc import attention_tc_source, key_tile
from audiograd.nn.functional import scaled_dot_product_attention as sdpa

gpu = pytest.mark.gpu

# (query, key, value, mask shape or None, mask kind)
CASES = [
    ((2, 4, 1025, 64), (2, 4, 1025, 64), (2, 4, 1025, 64), None, None),
    ((2, 4, 200, 64), (2, 4, 130, 64), (2, 4, 130, 64), None, None),
    ((2, 3, 33, 8), (2, 3, 33, 8), (2, 3, 33, 8), (1, 3, 33, 33), "float"),
    ((3, 2, 21, 16), (3, 2, 30, 16), (3, 2, 30, 16), (3, 1, 1, 30), "bool"),
    ((2, 2, 1, 65), (2, 2, 7, 65), (2, 2, 7, 3), None, None),
    ((2, 2, 9, 1), (2, 2, 1, 1), (2, 2, 1, 1), None, None),
    ((1, 2, 70, 128), (1, 2, 70, 128), (1, 2, 70, 128), (1, 2, 70, 70), "float"),
]


def _inputs(case, dtype, seed=0):
    qs, ks, vs, ms, kind = case
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(dtype) for s in (qs, ks, vs)]
    mask = None
    if kind == "float":
        mask = rng.standard_normal(ms).astype(dtype)
    elif kind == "bool":
        mask = rng.random(ms) > 0.3
        mask[..., 0] = True
    return arrays, mask


def _torch(arrays, mask, grad=False):
    import torch
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=grad) for a in arrays]
    m = None if mask is None else torch.tensor(mask if mask.dtype == bool else mask.astype(np.float64))
    return ts, torch.nn.functional.scaled_dot_product_attention(*ts, attn_mask=m)


def _ours(arrays, mask, grad=False):
    ts = [ag.tensor(a, device="cuda", requires_grad=grad) for a in arrays]
    m = None if mask is None else ag.tensor(mask, device="cuda")
    return ts, sdpa(*ts, attn_mask=m)


def _compile(source: str) -> None:
    """Compile with NVRTC where CuPy has it, else with nvcc where it is installed, else skip."""
    try:
        from cupy_backends.cuda.libs import nvrtc  # noqa: F401
    except ImportError:
        nvcc = shutil.which("nvcc")
        if nvcc is None:
            pytest.skip("neither NVRTC (CuPy) nor nvcc is available here")
        p = subprocess.run([nvcc, "-std=c++17", "-arch=sm_90", "-cubin", "-x", "cu", "-", "-o", "/dev/null"],
                           input=source, capture_output=True, text=True)
        assert p.returncode == 0, f"nvcc rejected the attention kernel:\n{p.stderr}\n{source}"
        return
    from nvrtc_check import compile_sm90
    compile_sm90(source, "attention.cu")


@pytest.mark.parametrize("double", [False, True])
def test_attention_source_compiles(double):
    for n, lq, lk, d, dv, bias in [(48, 1025, 1025, 64, 64, None), (3, 17, 9, 65, 7, (1, 3, 17, 9)),
                                   (2, 1, 1, 1, 1, (2, 1, 1, 1)), (2, 10, 10, 128, 128, None)]:
        src, launch = attention_source("ag_attention_test", double, n, lq, lk, d, dv, 0.125, 1, bias)
        assert launch.block == 128 and launch.grid >= n
        _compile(src)


def test_tiles_fit_shared_memory_or_refuse():
    assert tiles(64, 64, 4) == (64, 32)
    assert tiles(128, 128, 8) is not None
    assert tiles(1 << 14, 1 << 14, 8) is None


@gpu
@pytest.mark.parametrize("case", CASES, ids=[f"q{c[0]}k{c[1]}-{c[4]}" for c in CASES])
def test_forward_matches_torch(case):
    import torch
    arrays, mask = _inputs(case, np.float64)
    ref = _torch(arrays, mask)[1].detach().numpy()
    out = _ours(arrays, mask)[1]
    assert out.device == "cuda"
    err64 = np.abs(out.numpy() - ref).max()
    assert err64 <= 1e-12, f"float64 error {err64:.3g}"
    a32 = [a.astype(np.float32) for a in arrays]
    m32 = mask if mask is None or mask.dtype == bool else mask.astype(np.float32)
    tm = None if m32 is None else torch.tensor(m32)
    tout = torch.nn.functional.scaled_dot_product_attention(*(torch.tensor(a) for a in a32), attn_mask=tm)
    torch_err = np.abs(tout.numpy().astype(np.float64) - ref).max()
    err32 = np.abs(_ours(a32, m32)[1].numpy().astype(np.float64) - ref).max()
    floor = 2 * np.finfo(np.float32).eps * np.abs(ref).max()
    assert err32 <= max(2 * torch_err, floor), f"float32 error {err32:.3g}, torch's {torch_err:.3g}"


@gpu
def test_fully_masked_queries_give_zeros():
    arrays, _ = _inputs(((2, 2, 5, 4), (2, 2, 40, 4), (2, 2, 40, 4), None, None), np.float64)
    mask = np.ones((2, 1, 5, 40), bool)
    mask[0, :, 2] = False
    ref = _torch(arrays, mask)[1].detach().numpy()
    got = _ours(arrays, mask)[1].numpy()
    assert np.all(got[0, :, 2] == 0)
    assert np.abs(got - ref).max() <= 1e-12


@gpu
@pytest.mark.parametrize("case", [CASES[2], CASES[3]], ids=["bias", "key-padding"])
def test_gradients_match_torch(case):
    import torch
    arrays, mask = _inputs(case, np.float64, seed=1)
    tins, tout = _torch(arrays, mask, grad=True)
    w = np.random.default_rng(2).standard_normal(tout.shape)
    (tout * torch.tensor(w)).sum().backward()
    ins, out = _ours(arrays, mask, grad=True)
    (out * ag.tensor(w, device="cuda")).sum().backward()
    for ours, ref in zip(ins, tins):
        assert np.abs(ours.grad.numpy() - ref.grad.numpy()).max() <= 1e-11


def test_tensor_core_source_compiles():
    for n, lq, lk, d, dv, bias in [(48, 1025, 1025, 64, 64, None), (48, 1025, 130, 64, 64, (2, 1, 1, 130)),
                                   (3, 17, 9, 8, 16, (1, 3, 17, 9)), (2, 10, 10, 128, 128, None)]:
        src, launch = attention_tc_source("ag_attention_tc_test", n, lq, lk, d, dv, 0.125, 1, bias)
        assert launch.block == 128 and launch.grid == n * -(-lq // 64)
        _compile(src)


def test_tensor_core_tiles_only_for_heads_it_handles():
    assert key_tile(64, 64) == 64 and key_tile(128, 128) == 32
    assert key_tile(65, 64) is None and key_tile(64, 7) is None and key_tile(136, 136) is None
    with pytest.raises(ValueError, match="multiples of 8"):
        attention_tc_source("x", 1, 1, 1, 12, 12, 1.0, 1, None)


TC_CASES = [c for c in CASES if c[0][-1] % 8 == 0 and c[2][-1] % 8 == 0] + [
    ((2, 24, 1025, 64), (2, 24, 130, 64), (2, 24, 130, 64), (2, 1, 1, 130), "bool")]


@gpu
@pytest.mark.parametrize("case", TC_CASES, ids=[f"q{c[0]}k{c[1]}-{c[4]}" for c in TC_CASES])
def test_tensor_core_kernel_within_tf32_rounding(case, monkeypatch):
    monkeypatch.setattr(ag.config, "cuda_matmul_precision", "tf32")
    arrays, mask = _inputs(case, np.float64, seed=3)
    ref = _torch(arrays, mask)[1].detach().numpy()
    a32 = [a.astype(np.float32) for a in arrays]
    m32 = mask if mask is None or mask.dtype == bool else mask.astype(np.float32)
    got = _ours(a32, m32)[1].numpy().astype(np.float64)
    err = np.abs(got - ref).max() / np.abs(ref).max()
    assert err <= 4e-3, f"tf32 attention error {err:.3g} of the largest output"
    exact = np.abs(_ours(arrays, mask)[1].numpy() - ref).max()   # float64 keeps the exact kernel
    assert exact <= 1e-12


@gpu
def test_tensor_core_kernel_masked_queries_give_zeros(monkeypatch):
    monkeypatch.setattr(ag.config, "cuda_matmul_precision", "tf32")
    arrays, _ = _inputs(((2, 2, 5, 8), (2, 2, 70, 8), (2, 2, 70, 8), None, None), np.float32)
    mask = np.ones((2, 1, 5, 70), bool)
    mask[0, :, 2] = False
    got = _ours(arrays, mask)[1].numpy()
    assert np.all(got[0, :, 2] == 0) and np.isfinite(got).all()
