"""GPU convolutions and matrix products through cuBLAS.

The planning (which cuBLAS products compute a strided matmul or a convolution's taps) is pure
logic: it is checked here on the CPU by running the planned products with numpy over flat
buffers, the way cuBLAS would address them. Tests marked ``gpu`` need CuPy and an NVIDIA GPU
(``pytest --gpu``) and compare CUDA results with the same audiograd computation on the CPU.

Tolerances are relative to the largest reference value: fp32 1e-5; tf32 5e-3 (inputs rounded
to 10 mantissa bits, about 5e-4 per product); bf16 3e-2 (7 bits, about 4e-3 per product).
"""

import numpy as np
import pytest

import audiograd as ag
import audiograd.nn.functional as F
from audiograd.devices.cuda.conv import conv_gemms
from audiograd.devices.cuda import blas as cuda_blas, gemm_plan
from audiograd.devices.cuda.gemm_plan import OP_N, OP_T, blas_layout, plan_matmul

gpu = pytest.mark.gpu
TOL = {"fp32": 1e-5, "tf32": 5e-3, "bf16": 3e-2}


def _close(got, ref, rtol):
    scale = float(np.abs(ref).max()) if np.size(ref) else 0.0
    err = float(np.abs(np.asarray(got, np.float64) - ref).max()) if np.size(ref) else 0.0
    assert np.shape(got) == np.shape(ref)
    assert err <= rtol * max(scale, 1e-30), f"max error {err:.3g} > {rtol:g} * max |ref| {scale:.3g}"
    return err / max(scale, 1e-30)


# ---- a numpy stand-in for cuBLAS over flat buffers -------------------------------------------------
def _mat(buf, off, rows, cols, ld):
    assert off >= 0 and off + (rows - 1) + (cols - 1) * ld < buf.size, "product reads outside its buffer"
    it = buf.itemsize
    return np.ndarray((rows, cols), buf.dtype, buffer=buf, offset=off * it, strides=(it, ld * it))


def emulate(gemms, bufs, starts):
    """Run ``gemms`` (gemm_plan.Gemm) over flat numpy buffers whose operands start at element
    ``starts[i]`` of ``bufs[i]``, checking the constraints cuBLAS puts on its arguments."""
    for g in gemms:
        assert min(g.m, g.n, g.k) >= 1 and 1 <= g.batch <= gemm_plan.MAX_BATCH
        ar, ac = (g.m, g.k) if g.transa == OP_N else (g.k, g.m)
        br, bc = (g.k, g.n) if g.transb == OP_N else (g.n, g.k)
        assert g.lda >= ar and g.ldb >= br and g.ldc >= g.m
        written = set()
        for i in range(g.batch):
            a = _mat(bufs[g.a[0]], starts[g.a[0]] + g.a[1] + i * g.stride_a, ar, ac, g.lda)
            b = _mat(bufs[g.b[0]], starts[g.b[0]] + g.b[1] + i * g.stride_b, br, bc, g.ldb)
            c_off = starts[g.c[0]] + g.c[1] + i * g.stride_c
            c = _mat(bufs[g.c[0]], c_off, g.m, g.n, g.ldc)
            cells = {c_off + r + col * g.ldc for r in range(g.m) for col in range(g.n)}
            assert not cells & written, "products of one batch write the same element"
            written |= cells
            prod = (a if g.transa == OP_N else a.T) @ (b if g.transb == OP_N else b.T)
            c[...] = prod if g.beta == 0 else prod + g.beta * c


# ---- strided operands ------------------------------------------------------------------------------
def _layout(rng, shape, broadcast_batch=False, allow_negative=True):
    """A random strided array of ``shape`` inside a flat float64 buffer: (flat, start, view)."""
    nd = len(shape)
    order = list(range(nd))
    if rng.random() < 0.5:
        rng.shuffle(order)
    else:  # mostly the usual layouts: row-major or the last two dims swapped
        order = order[:-2] + ([nd - 1, nd - 2] if rng.random() < 0.5 else [nd - 2, nd - 1])
    strides = [0] * nd
    step = 1
    for d in reversed(order):
        if broadcast_batch and d < nd - 2 and rng.random() < 0.4:
            continue  # stride 0 over a batch dim
        strides[d] = step * (2 if rng.random() < 0.15 else 1)
        step = strides[d] * shape[d] + (rng.integers(0, 3) if rng.random() < 0.3 else 0)
    neg = [allow_negative and rng.random() < 0.1 for _ in range(nd)]
    start = sum((shape[d] - 1) * strides[d] for d in range(nd) if neg[d])
    strides = [-s if n else s for s, n in zip(strides, neg)]
    start += int(rng.integers(0, 4))
    flat = rng.standard_normal(start + step + 8)
    view = np.ndarray(shape, np.float64, buffer=flat, offset=start * 8, strides=[s * 8 for s in strides])
    return flat, start, view


def _run_plan(out_view, out_flat, out_start, ops):
    """Plan and emulate out = a @ b, making operands contiguous as the plan asks."""
    (a_flat, a_start, a), (b_flat, b_start, b) = ops
    target = (out_flat, out_start, out_view)
    arrays = {"out": target, "a": (a_flat, a_start, a), "b": (b_flat, b_start, b)}
    for _ in range(3):
        strides = [tuple(s // 8 for s in arrays[k][2].strides) for k in ("out", "a", "b")]
        plan = plan_matmul(out_view.shape, a.shape[-1], *strides)
        assert plan is not None
        if plan.gemms is not None:
            flats = [arrays[k][0] for k in ("out", "a", "b")]
            emulate(plan.gemms, flats, [arrays[k][1] for k in ("out", "a", "b")])
            if arrays["out"] is not target:
                out_view[...] = arrays["out"][2]
            return plan
        for k in plan.copy:
            fresh = np.ascontiguousarray(arrays[k][2]) if k != "out" else np.full(out_view.shape, np.nan)
            arrays[k] = (fresh.reshape(-1), 0, fresh)
    raise AssertionError("the plan still asks for copies after three rounds")


def _in_storage(view):
    """(flat storage, start element, view) for a numpy view of a C-contiguous array."""
    root = view
    while isinstance(root.base, np.ndarray):
        root = root.base
    start = (view.__array_interface__["data"][0] - root.__array_interface__["data"][0]) // view.itemsize
    return root.reshape(-1), start, view


def test_blas_layout():
    assert blas_layout(4, 3, 1, 4) == (OP_N, 4)
    assert blas_layout(4, 3, 1, 6) == (OP_N, 6)
    assert blas_layout(4, 3, 3, 1) == (OP_T, 3)
    assert blas_layout(4, 3, 5, 1) == (OP_T, 5)
    assert blas_layout(4, 3, 1, 3) is None          # columns overlap
    assert blas_layout(4, 3, 2, 8) is None          # no unit stride
    assert blas_layout(4, 3, 1, 0) is None          # broadcast inside the matrix
    assert blas_layout(4, 3, -1, 4) is None
    assert blas_layout(1, 3, 7, 1) == (OP_N, 1)     # one row: its stride is free
    assert blas_layout(4, 1, 1, 0) == (OP_N, 4)     # one column
    assert blas_layout(1, 1, 0, 0) == (OP_N, 1)


@pytest.mark.parametrize("seed", range(60))
def test_plan_matmul_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    m, k, n = (int(v) for v in rng.integers(1, 6, 3))
    batch = tuple(int(v) for v in rng.integers(1, 4, int(rng.integers(0, 3))))
    a = _layout(rng, batch + (m, k), broadcast_batch=True)
    b = _layout(rng, batch + (k, n), broadcast_batch=True)
    out_flat, out_start, out = _layout(rng, batch + (m, n), allow_negative=seed % 3 == 0)
    out[...] = np.nan
    _run_plan(out, out_flat, out_start, (a, b))
    np.testing.assert_allclose(out, np.matmul(a[2], b[2]), rtol=1e-12, atol=1e-12)


def test_plan_matmul_reads_common_layouts_in_place():
    rng = np.random.default_rng(1)
    cases = [  # (a, b): row-major, transposed and sliced views with a contiguous out
        (rng.standard_normal((5, 7)), rng.standard_normal((7, 3))),
        (rng.standard_normal((7, 5)).T, rng.standard_normal((3, 7)).T),
        (rng.standard_normal((4, 5, 9))[..., 1:8], rng.standard_normal((4, 7, 3))),
        (np.broadcast_to(rng.standard_normal((5, 7)), (4, 5, 7)), rng.standard_normal((4, 3, 7)).transpose(0, 2, 1)),
    ]
    for a, b in cases:
        out = np.full(a.shape[:-1] + (b.shape[-1],), np.nan)
        plan = _run_plan(out, out.reshape(-1), 0, (_in_storage(a), _in_storage(b)))
        assert not plan.copy and len(plan.gemms) == 1
        np.testing.assert_allclose(out, a @ b, rtol=1e-12)


def test_plan_matmul_loops_and_copies_unmergeable_batches():
    rng = np.random.default_rng(2)
    # a's batch dims are swapped: one call per outer index, batched over the inner one
    a_store = rng.standard_normal((4, 3, 5, 6))
    a = a_store.transpose(1, 0, 2, 3)
    b = rng.standard_normal((3, 4, 6, 2))
    out = np.full((3, 4, 5, 2), np.nan)
    strides = [tuple(s // 8 for s in x.strides) for x in (out, a, b)]
    plan = plan_matmul(out.shape, 6, *strides)
    assert plan.gemms is not None and len(plan.gemms) == 3 and plan.gemms[0].batch == 4
    emulate(plan.gemms, [out.reshape(-1), a_store.reshape(-1), b.reshape(-1)], [0, 0, 0])
    np.testing.assert_allclose(out, a @ b, rtol=1e-12)
    # past MAX_HOST_LOOPS calls only the operand whose own batch does not merge is copied
    big = (gemm_plan.MAX_HOST_LOOPS + 1, gemm_plan.MAX_HOST_LOOPS + 2)
    a = rng.standard_normal(big[::-1] + (2, 2)).transpose(1, 0, 2, 3)
    b = rng.standard_normal(big + (2, 2))
    out = np.empty(big + (2, 2))
    plan = plan_matmul(out.shape, 2, *[tuple(s // 8 for s in x.strides) for x in (out, a, b)])
    assert plan.gemms is None and plan.copy == ("a",)


def test_split_batch_keeps_every_product(monkeypatch):
    monkeypatch.setattr(gemm_plan, "MAX_BATCH", 3)
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((8, 4, 5)), rng.standard_normal((8, 5, 2))
    out = np.full((8, 4, 2), np.nan)
    plan = _run_plan(out, out.reshape(-1), 0, ((a.reshape(-1), 0, a), (b.reshape(-1), 0, b)))
    assert [g.batch for g in plan.gemms] == [3, 3, 2]
    np.testing.assert_allclose(out, a @ b, rtol=1e-12)


def test_empty_and_oversized_plans():
    assert plan_matmul((0, 3), 4, (3, 1), (4, 1), (3, 1)).gemms == []
    assert plan_matmul((2, 0, 3), 4, (0, 3, 1), (0, 4, 1), (0, 3, 1)).gemms == []
    assert plan_matmul((2, 3), 0, (3, 1), (0, 1), (3, 1)) is None
    assert plan_matmul((2, 3), 2 ** 31, (3, 1), (2 ** 31, 1), (3, 1)) is None


def test_precision_setting_is_checked():
    saved = ag.config.cuda_matmul_precision
    try:
        for prec in ("fp32", "tf32", "bf16"):
            ag.config.cuda_matmul_precision = prec
            assert cuda_blas.compute_type(np.float32)[0] != cuda_blas.compute_type(np.float64)[0]
        ag.config.cuda_matmul_precision = "fp16"
        with pytest.raises(ValueError, match="cuda_matmul_precision"):
            cuda_blas.compute_type(np.float32)
        cuda_blas.compute_type(np.float64)  # float64 ignores the setting
    finally:
        ag.config.cuda_matmul_precision = saved


# ---- convolution taps ------------------------------------------------------------------------------
def _conv_reference(w, x, bias, offsets, t):
    """out[n, g*O+o, t] = bias + sum_{c,k} w[g,o,c,k] * x[n, g*C+c, off_k + t]."""
    g, o, c, _ = w.shape
    n = x.shape[0]
    xr = x.reshape(n, g, c, -1)
    out = np.zeros((n, g, o, t))
    for j, off in enumerate(offsets):
        out += np.einsum("goc,ngct->ngot", w[..., j], xr[..., off:off + t])
    out = out.reshape(n, g * o, t)
    return out if bias is None else out + bias[None, :, None]


CONV_CASES = [  # (n, g, o, c, k, t, offsets)
    (2, 1, 3, 4, 3, 9, [0, 1, 2]),
    (1, 1, 5, 2, 1, 7, [0]),
    (3, 2, 2, 3, 4, 6, [0, 2, 4, 6]),      # groups <= batch: batched over the batch
    (1, 4, 2, 3, 2, 5, [5, 0]),            # groups > batch: batched over the groups
    (2, 3, 1, 1, 5, 4, [8, 6, 4, 2, 0]),   # one channel in and out per group
]


@pytest.mark.parametrize("n,g,o,c,k,t,offsets", CONV_CASES)
@pytest.mark.parametrize("layout", ["weight", "packed", "transposed"])
@pytest.mark.parametrize("bias", [False, True])
def test_conv_gemms_match_reference(n, g, o, c, k, t, offsets, layout, bias):
    rng = np.random.default_rng(n * 100 + g * 10 + k)
    lrow = t + max(offsets) + 3
    x = rng.standard_normal((n, g * c, lrow))
    w = rng.standard_normal((g, o, c, k))
    b = rng.standard_normal(g * o) if bias else None
    if layout == "weight":      # the weight's own (G, O, C, K) layout: read in place only when K == 1
        store, start, strides = w.reshape(-1), 0, (o * c * k, c * k, k, 1)
    elif layout == "packed":    # (K, G, O, C), what the GPU call repacks into
        store, start, strides = w.transpose(3, 0, 1, 2).copy().reshape(-1), 0, (o * c, c, 1, g * o * c)
    else:                       # stored (G, C, K, O) after a lead-in: O steps by 1, as in a transposed conv
        store = np.concatenate([np.zeros(5), w.transpose(0, 2, 3, 1).copy().reshape(-1)])
        start, strides = 5, (o * c * k, 1, k * o, o)
    gemms = conv_gemms(n, g, o, c, t, lrow, offsets, start, strides, 1.0 if bias else 0.0)
    if gemms is None:
        assert layout == "weight" and k > 1 and c > 1 and o > 1
        store = w.transpose(3, 0, 1, 2).copy().reshape(-1)
        gemms = conv_gemms(n, g, o, c, t, lrow, offsets, 0, (o * c, c, 1, g * o * c), 1.0 if bias else 0.0)
    out = np.broadcast_to(b[None, :, None], (n, g * o, t)).copy() if bias else np.full((n, g * o, t), np.nan)
    emulate(gemms, [out.reshape(-1), store, x.reshape(-1)], [0, 0, 0])
    np.testing.assert_allclose(out, _conv_reference(w, x, b, offsets, t), rtol=1e-12, atol=1e-12)
    assert len(gemms) == k * min(n, g)


# ---- on the GPU ------------------------------------------------------------------------------------
def _set_precision(prec):
    saved = ag.config.cuda_matmul_precision
    ag.config.cuda_matmul_precision = prec
    return saved


def _grads(device, fn, arrays, weights):
    """fn's output and the gradients of sum(out * weights) for every input, on ``device``."""
    ts = [ag.tensor(a, device=device, requires_grad=True) for a in arrays]
    y = fn(*ts)
    (y * ag.tensor(weights, device=device)).sum().backward()
    assert y.device == device
    return [y.numpy()] + [t.grad.numpy() for t in ts]


def _compare(fn, arrays, rtol, ref_fn=None, seed=0):
    """Values and gradients of ``fn`` on CUDA against ``ref_fn`` (default ``fn``) on the CPU."""
    ref_in = [ag.tensor(a) for a in arrays]
    shape = (ref_fn or fn)(*ref_in).shape
    weights = np.random.default_rng(seed).standard_normal(shape).astype(arrays[0].dtype)
    ref = _grads("cpu", ref_fn or fn, arrays, weights)
    got = _grads("cuda", fn, arrays, weights)
    for g, r in zip(got, ref):
        assert g.dtype == r.dtype
        _close(g, r, rtol)


# (batch, cin, cout, length, kernel, stride, padding, dilation, groups, bias)
CONV1D = [
    (2, 8, 6, 50, 1, 1, 0, 1, 1, True),
    (3, 12, 10, 64, 7, 1, 3, 1, 1, True),
    (2, 8, 12, 70, 7, 2, 2, 3, 2, False),
    (1, 16, 8, 90, 16, 4, 6, 1, 1, True),
    (2, 12, 12, 33, 3, 1, 1, 2, 4, True),
    (4, 6, 9, 40, 5, 3, 0, 1, 3, True),
    (2, 40, 24, 300, 7, 1, 9, 3, 1, False),
]


def _conv_arrays(case, dtype, seed=0):
    n, cin, cout, length, k, _, _, _, groups, bias = case
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal((n, cin, length)), rng.standard_normal((cout, cin // groups, k))]
    if bias:
        arrays.append(rng.standard_normal(cout))
    return [a.astype(dtype) for a in arrays]


def _conv_fns(case):
    """(public conv1d, the same through the GPU conv rows op) for one case."""
    _, _, _, _, _, stride, padding, dilation, groups, bias = case
    from audiograd.nn.conv import _conv1d_rows

    def public(x, w, b=None):
        return F.conv1d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)

    def rows(x, w, b=None):
        return _conv1d_rows(F.pad(x, (padding, padding)), w, b, stride, dilation, groups)
    return public, rows


@gpu
@pytest.mark.parametrize("case", CONV1D)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv1d_forward_backward(case, dtype):
    public, rows = _conv_fns(case)
    arrays = _conv_arrays(case, dtype)
    rtol = 1e-5 if dtype == np.float32 else 1e-11
    _compare(public, arrays, rtol)
    _compare(rows, arrays, rtol, ref_fn=public)


@gpu
@pytest.mark.parametrize("prec", ["tf32", "bf16"])
def test_conv1d_reduced_precision(prec):
    case = CONV1D[-1]
    public, rows = _conv_fns(case)
    arrays = _conv_arrays(case, np.float32, seed=4)
    saved = _set_precision(prec)
    try:
        _compare(rows, arrays, TOL[prec], ref_fn=public)
        _compare(public, arrays, TOL[prec])
    finally:
        ag.config.cuda_matmul_precision = saved


@gpu
def test_conv_rows_reads_a_transposed_weight_in_place():
    from audiograd.nn.conv import ConvRows
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 8, 30)).astype(np.float32)
    w = rng.standard_normal((8, 5, 3)).astype(np.float32)

    def fn(x, w):  # as the transposed convolution builds it: (G, O*K, C, 1) over the weight's storage
        wm = w.reshape(2, 4, 15).transpose(1, 2)
        return ConvRows.apply(wm.unsqueeze(-1), F.pad(x, (0, 16)), offsets=[0], length=30)
    _compare(fn, [x, w], 1e-5)


@gpu
@pytest.mark.parametrize("stride,padding,output_padding,groups", [(2, 0, 0, 1), (4, 2, 1, 1), (3, 1, 0, 2)])
def test_conv_transpose1d_forward_backward(stride, padding, output_padding, groups):
    rng = np.random.default_rng(stride)
    arrays = [rng.standard_normal((2, 8, 21)).astype(np.float32),
              rng.standard_normal((8, 6, 7)).astype(np.float32), rng.standard_normal(6 * groups).astype(np.float32)]

    def fn(x, w, b):
        return F.conv_transpose1d(x, w, b, stride=stride, padding=padding, output_padding=output_padding,
                                  groups=groups)
    _compare(fn, arrays, 1e-5)


MATMULS = [  # audiograd programs over (a, b): batched, broadcast, transposed, sliced, vectors
    lambda a, b: a @ b,
    lambda a, b: a.transpose(-1, -2).contiguous().transpose(-1, -2) @ b,
    lambda a, b: b.transpose(-1, -2) @ a.transpose(-1, -2),
    lambda a, b: a[0] @ b,
    lambda a, b: a[:, 1:, ::2] @ b[:, ::2, 1:],
    lambda a, b: a.unsqueeze(0) @ b[:1],
    lambda a, b: a[:, 0] @ b,
    lambda a, b: a @ b[0, :, 0],
    lambda a, b: (a @ b).relu().sum(0),
    lambda a, b: a.flip(1) @ b,
]


@gpu
@pytest.mark.parametrize("i", range(len(MATMULS)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_forward_backward(i, dtype):
    rng = np.random.default_rng(i)
    arrays = [rng.standard_normal((3, 33, 20)).astype(dtype), rng.standard_normal((3, 20, 17)).astype(dtype)]
    _compare(MATMULS[i], arrays, 1e-5 if dtype == np.float32 else 1e-12)


def _cupy_cases(cp, rng):
    """(out, a, b) CuPy arrays in layouts numpy's matmul takes: views, broadcasts, vectors."""
    def r(*shape):
        return cp.asarray(rng.standard_normal(shape).astype(np.float32))
    big = gemm_plan.MAX_HOST_LOOPS + 3
    return [
        (None, r(5, 7), r(7, 3)),
        (None, r(7, 5).T, r(3, 7).T),
        (None, r(4, 1, 6, 7), r(3, 7, 5)),
        (None, r(7), r(7, 3)),
        (None, r(2, 5, 7), r(7)),
        (None, r(7), r(7)),
        (None, r(6, 9)[::-1, 1:8], r(7, 3)),
        (None, r(6, 14)[:, ::2], r(7, 3)),
        (cp.empty((3, 5), np.float32).T, r(5, 7), r(7, 3)),
        (cp.empty((4, 2, 5, 3), np.float32)[:, 1], r(4, 5, 7), r(4, 7, 3)),
        (None, r(4, 3, 5, 7).transpose(1, 0, 2, 3), r(3, 4, 7, 2)),
        (None, r(big + 1, big, 3, 4).transpose(1, 0, 2, 3), r(big, big + 1, 4, 2)),
        (None, r(5, 0), r(0, 3)),
        (None, r(0, 4), r(4, 3)),
        (None, r(2, 3, 1), r(1, 4)),
    ]


@gpu
def test_device_matmul_follows_numpy():
    import cupy as cp
    from audiograd.devices.cuda.device import get_device
    dev = get_device()
    for out, a, b in _cupy_cases(cp, np.random.default_rng(7)):
        ref = np.matmul(cp.asnumpy(a).astype(np.float64), cp.asnumpy(b).astype(np.float64))
        if out is None:
            out = cp.full(ref.shape, np.nan, np.float32)
        dev.matmul(out, a, b)
        _close(cp.asnumpy(out), ref, 1e-5)
    a, b = cp.asarray(np.ones((3, 4))), cp.asarray(np.ones((4, 2)))
    out = cp.empty((3, 2))
    dev.matmul(out, a, b)
    np.testing.assert_array_equal(cp.asnumpy(out), np.full((3, 2), 4.0))


@gpu
def test_device_matmul_through_cupys_wrappers(monkeypatch):
    import cupy as cp
    from audiograd.devices.cuda.device import get_device
    dev = get_device()
    monkeypatch.setattr(cuda_blas._cublas(), "lib", None)
    for out, a, b in _cupy_cases(cp, np.random.default_rng(8))[:5]:
        ref = np.matmul(cp.asnumpy(a).astype(np.float64), cp.asnumpy(b).astype(np.float64))
        out = cp.full(ref.shape, np.nan, np.float32)
        dev.matmul(out, a, b)
        _close(cp.asnumpy(out), ref, 1e-5)


@gpu
def test_precision_modes_round_as_documented():
    import cupy as cp
    from audiograd.devices.cuda.device import get_device
    dev = get_device()
    rng = np.random.default_rng(9)
    a, b = rng.standard_normal((512, 1024)).astype(np.float32), rng.standard_normal((1024, 384)).astype(np.float32)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    errs = {}
    for prec in ("fp32", "tf32", "bf16"):
        saved = _set_precision(prec)
        try:
            out = cp.empty((512, 384), np.float32)
            dev.matmul(out, cp.asarray(a), cp.asarray(b))
            errs[prec] = _close(cp.asnumpy(out), ref, TOL[prec])
            got = (ag.tensor(a, device="cuda") @ ag.tensor(b, device="cuda")).numpy()
            _close(got, ref, TOL[prec])
        finally:
            ag.config.cuda_matmul_precision = saved
    # the reduced modes really round their inputs (cuBLAS may serve "bf16" with TF32 kernels)
    assert errs["fp32"] < 1e-5 and errs["tf32"] > 3 * errs["fp32"] and errs["bf16"] > 3 * errs["fp32"]


@gpu
def test_blas_calls_and_conv_rows_capture_into_a_cuda_graph():
    import cupy as cp
    from audiograd.devices.cuda.conv import conv_rows_call
    from audiograd.nn.conv import ConvRows
    from audiograd.devices.cuda.device import get_device
    dev = get_device()
    rng = np.random.default_rng(10)
    a = cp.asarray(rng.standard_normal((3, 40, 24)).astype(np.float32))
    b = cp.asarray(rng.standard_normal((3, 30, 24)).astype(np.float32)).transpose(0, 2, 1)
    out = cp.empty((3, 40, 30), np.float32)
    # a conv_rows node whose weight view needs repacking, with a bias
    x = rng.standard_normal((2, 6, 40)).astype(np.float32)
    w = rng.standard_normal((1, 4, 6, 3)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    y = ConvRows.apply(ag.tensor(w, device="cuda"), ag.tensor(x, device="cuda"), ag.tensor(bias, device="cuda"),
                       offsets=[0, 2, 4], length=30)
    node = y.node
    call = conv_rows_call(node, [node.srcs[0].base_view()[0]] + list(node.srcs[1:]))
    bufs = [cp.empty((2, 4, 30), np.float32), cp.asarray(w), cp.asarray(x), cp.asarray(bias)]
    ref_conv = y.numpy()
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        dev.matmul(out, a, b)  # warm up outside the capture
        call(bufs)
        out.fill(0)
        bufs[0].fill(0)
        stream.begin_capture()
        dev.matmul(out, a, b)
        call(bufs)
        graph = stream.end_capture()
    stream.synchronize()
    assert float(cp.abs(out).max()) == 0.0 and float(cp.abs(bufs[0]).max()) == 0.0
    graph.launch(stream)
    stream.synchronize()
    _close(cp.asnumpy(out), np.matmul(cp.asnumpy(a), cp.asnumpy(b)).astype(np.float64), 1e-5)
    _close(cp.asnumpy(bufs[0]), ref_conv, 1e-5)


@gpu
def test_matmul_that_needs_a_copy_refuses_to_be_captured():
    import cupy as cp
    from audiograd.devices.cuda.device import get_device
    dev = get_device()
    a = cp.asarray(np.random.default_rng(11).standard_normal((6, 5)).astype(np.float32))[::-1]
    b, out = cp.ones((5, 4), np.float32), cp.empty((6, 4), np.float32)
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        try:
            with pytest.raises(RuntimeError, match="CUDA graph"):
                dev.matmul(out, a, b)
        finally:
            stream.end_capture()
        dev.matmul(out, a, b)  # outside a capture the copy is fine
    stream.synchronize()
    _close(cp.asnumpy(out), cp.asnumpy(a).astype(np.float64) @ np.ones((5, 4)), 1e-5)


def test_broadcast_weight_folds_batch_into_rows():
    """(B, L, K) @ (K, N) broadcast over B is one product of B*L rows, not a batch of B."""
    rng = np.random.default_rng(0)
    a = _in_storage(rng.standard_normal((3, 5, 4)))
    w = rng.standard_normal((4, 6))
    b = _in_storage(np.broadcast_to(w, (3, 4, 6)))
    out = np.full((3, 5, 6), np.nan)
    plan = _run_plan(out, *_in_storage(out)[:2], (a, b))
    assert len(plan.gemms) == 1 and plan.gemms[0].batch == 1 and 15 in (plan.gemms[0].m, plan.gemms[0].n)
    np.testing.assert_allclose(out, a[2] @ w, rtol=1e-12)
