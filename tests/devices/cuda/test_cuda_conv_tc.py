"""The TF32 implicit-GEMM convolution kernel (``codegen.cuda_conv_tc``).

Its sources are compiled with NVRTC for sm_90 on any machine that has NVRTC; tests marked
``gpu`` run it (``pytest --gpu``) in the "tf32" precision against a float64 numpy reference,
forward and through the gradients, on shapes that exercise every edge of its tiles: channels
not a multiple of the 8 staged per step or of the block's rows, lengths not a multiple of the
128 steps per block, odd lengths, groups, batches, dilations up to the decoder's 9.

Tolerance: inputs and weights are rounded to TF32 (10 mantissa bits, relative error at most
2^-11 each), so a sum of K products of random signs is off by about 2^-10 * sqrt(K) times a
typical product; 2e-3 of the largest reference value holds that with margin for K up to 7000.
"""

import numpy as np
import pytest

import audiograd as ag
import audiograd.nn.functional as F
from audiograd.devices.cuda import conv_tc as cuda_conv_tc
from audiograd.devices.cuda.conv_tc import block_rows, block_steps, conv_tc_source, pipeline_stages, smem_bytes, usable
from tests.nvrtc_check import compile_sm90

gpu = pytest.mark.gpu
RTOL = 2e-3

# (batch, cin, cout, length, kernel, padding, dilation, groups, bias)
CASES = [
    (1, 128, 128, 1000, 7, 27, 9, 1, False),
    (2, 100, 130, 777, 1, 0, 1, 1, True),
    (2, 13, 70, 301, 7, 3, 1, 1, True),
    (1, 64, 200, 257, 3, 3, 3, 1, True),
    (3, 24, 18, 130, 5, 2, 1, 3, True),
    (1, 40, 2, 515, 7, 3, 1, 1, True),
    (1, 256, 256, 129, 7, 9, 3, 1, True),
]


def test_block_rows_and_limits():
    assert block_rows(128, 7) == 128 and block_rows(64, 7) == 64 and block_rows(2, 7) == 32
    assert smem_bytes(128, 7, 54) <= cuda_conv_tc.MAX_SMEM and pipeline_stages(128, 1, 0) >= 3
    assert block_rows(128, 100) is None                   # a weight tile too large to stage
    assert not usable(128, 128, 100, 1000, [0, 700])      # reach beyond the staged halo
    assert not usable(128, 128, 100, 162, [0, 1, 2])      # rows not a multiple of 4 steps
    assert usable(128, 128, 100, 160, [0, 9, 18])


@pytest.mark.parametrize("o,c,t,lrow,offsets,strides,bias", [
    (128, 128, 442368, 442428, [0, 9, 18, 27, 36, 45, 54], (0, 896, 7, 1), True),
    (2, 128, 1000, 1008, list(range(7)), (0, 896, 7, 1), False),
    (64, 13, 999, 1012, [0, 3, 6], (2496, 39, 3, 1), True),
    (1024, 1024, 1728, 1732, [0], (0, 1024, 1, 1), True),
])
def test_sources_compile(o, c, t, lrow, offsets, strides, bias):
    src = conv_tc_source("ag_test_conv", 2, 3, o, c, t, lrow, offsets, strides, block_rows(o, len(offsets)), bias,
                         has_addend=not bias)
    assert "TAP(6" in src or len(offsets) < 7
    compile_sm90(src)


def _reference(x, w, b, padding, dilation, groups):
    """conv1d in float64 numpy, PyTorch's definition."""
    n, cin, length = x.shape
    cout, cin_g, k = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (padding, padding)))
    t = xp.shape[2] - dilation * (k - 1)
    y = np.zeros((n, cout, t))
    og = cout // groups
    for g in range(groups):
        for j in range(k):
            win = xp[:, g * cin_g:(g + 1) * cin_g, j * dilation:j * dilation + t]
            y[:, g * og:(g + 1) * og] += np.einsum("oc,nct->not", w[g * og:(g + 1) * og, :, j].astype(np.float64), win)
    return y + (0 if b is None else b.astype(np.float64)[None, :, None])


def _close(got, ref):
    scale = float(np.abs(ref).max())
    err = float(np.abs(got.astype(np.float64) - ref).max())
    assert err <= RTOL * scale, f"max error {err:.3g} > {RTOL} * {scale:.3g}"


@pytest.fixture
def tf32():
    saved = ag.config.cuda_matmul_precision
    ag.config.cuda_matmul_precision = "tf32"
    yield
    ag.config.cuda_matmul_precision = saved


@pytest.fixture
def launches(monkeypatch):
    """Counts the kernel's runs, so a test knows the tensor-core path was taken."""
    count = []
    original = cuda_conv_tc.TensorCoreConv.__call__
    monkeypatch.setattr(cuda_conv_tc.TensorCoreConv, "__call__", lambda self, bufs: (count.append(1), original(self, bufs)))
    return count


@gpu
@pytest.mark.parametrize("case", CASES)
def test_forward_and_gradients_match_float64(case, tf32, launches):
    n, cin, cout, length, k, padding, dilation, groups, bias = case
    rng = np.random.default_rng(cin + cout)
    x = rng.standard_normal((n, cin, length)).astype(np.float32)
    w = (rng.standard_normal((cout, cin // groups, k)) / np.sqrt(cin * k / groups)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32) if bias else None
    xt = ag.tensor(x, device="cuda", requires_grad=True)
    wt = ag.tensor(w, device="cuda")
    bt = ag.tensor(b, device="cuda") if bias else None
    y = F.conv1d(xt, wt, bt, padding=padding, dilation=dilation, groups=groups)
    ref = _reference(x, w, b, padding, dilation, groups)
    _close(y.numpy(), ref)
    assert len(launches) == 1
    # the input's gradient is the same kernel over the transposed weight (one tap and no bias:
    # a plain cuBLAS product instead)
    g = rng.standard_normal(ref.shape).astype(np.float32)
    (y * ag.tensor(g, device="cuda")).sum().backward()
    dx = _reference_dx(g, w, length, padding, dilation, groups)
    _close(xt.grad.numpy(), dx)
    assert len(launches) == (2 if k > 1 else 1)


def _reference_dx(g, w, length, padding, dilation, groups):
    """d(sum(conv1d(x) * g)) / dx in float64."""
    cout, cin_g, k = w.shape
    og = cout // groups
    n, _, t = g.shape
    dxp = np.zeros((n, cin_g * groups, length + 2 * padding))
    for gi in range(groups):
        for j in range(k):
            dxp[:, gi * cin_g:(gi + 1) * cin_g, j * dilation:j * dilation + t] += np.einsum(
                "oc,not->nct", w[gi * og:(gi + 1) * og, :, j].astype(np.float64), g[:, gi * og:(gi + 1) * og])
    return dxp[:, :, padding:padding + length]


@gpu
def test_many_tiles_and_exact_mode_untouched(tf32, launches):
    """A length spanning many blocks, and fp32 mode never takes the tensor-core path."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 32, 40 * block_steps() + 5)).astype(np.float32)
    w = (rng.standard_normal((48, 32, 7)) / 15).astype(np.float32)
    y = F.conv1d(ag.tensor(x, device="cuda"), ag.tensor(w, device="cuda"), padding=9, dilation=3)
    _close(y.numpy(), _reference(x, w, None, 9, 3, 1))
    assert len(launches) == 1
    ag.config.cuda_matmul_precision = "fp32"
    y = F.conv1d(ag.tensor(x, device="cuda"), ag.tensor(w, device="cuda"), padding=9, dilation=3)
    ref = _reference(x, w, None, 9, 3, 1)
    assert float(np.abs(y.numpy() - ref).max()) <= 1e-5 * float(np.abs(ref).max())
    assert len(launches) == 1


@gpu
@pytest.mark.parametrize("prec,dtype,k", [("tf32", np.float32, 7), ("tf32", np.float32, 1), ("fp32", np.float32, 7),
                                           ("fp32", np.float64, 1)])
def test_residual_sum_folded_into_the_convolution(prec, dtype, k, launches):
    """``conv(x) + r`` (the residual units' sum) runs as one convolution reading r as an addend,
    forward and through the gradients, in every precision and both float types."""
    saved = ag.config.cuda_matmul_precision
    ag.config.cuda_matmul_precision = prec
    try:
        rng = np.random.default_rng(k)
        x = rng.standard_normal((2, 40, 300)).astype(dtype)
        w = (rng.standard_normal((40, 40, k)) / np.sqrt(40 * k)).astype(dtype)
        b = rng.standard_normal(40).astype(dtype)
        r = rng.standard_normal((2, 40, 300)).astype(dtype)
        ts = [ag.tensor(v, device="cuda", requires_grad=True) for v in (x, w, b, r)]
        y = F.conv1d(ts[0], ts[1], ts[2], padding=3 * (k // 2), dilation=3) + ts[3]
        ref = _reference(x, w, b, 3 * (k // 2), 3, 1) + r
        got = y.numpy()
        tol = RTOL if prec == "tf32" else 1e-5 if dtype == np.float32 else 1e-12
        assert float(np.abs(got - ref).max()) <= tol * float(np.abs(ref).max())
        assert len(launches) == (1 if prec == "tf32" else 0)
        y.sum().backward()
        np.testing.assert_allclose(ts[3].grad.numpy(), np.ones_like(r))
        np.testing.assert_allclose(ts[2].grad.numpy(), np.full(40, 600.0), rtol=1e-6)
    finally:
        ag.config.cuda_matmul_precision = saved


@gpu
def test_residual_sum_is_folded_in_the_schedule():
    from audiograd.graph.library_ops import has_addend
    from audiograd.schedule.fuse import LibraryStep, create_schedule
    rng = np.random.default_rng(2)
    x = ag.tensor(rng.standard_normal((1, 40, 100)).astype(np.float32), device="cuda")
    w = ag.tensor(rng.standard_normal((40, 40, 7)).astype(np.float32), device="cuda")
    y = F.conv1d(x, w, padding=3) + x
    steps = create_schedule([y.node], x.device.graph_passes)
    convs = [s for s in steps if isinstance(s, LibraryStep)]
    assert len(convs) == 1 and convs[0].out is y.node and convs[0].inputs[-1] is x.node and has_addend(convs[0].node)
    assert not any(getattr(s, "kernel", None) is not None and s.out is y.node for s in steps)
