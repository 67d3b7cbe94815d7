"""Reductions on the GPU against the same program on the CPU.

Few outputs with long reductions run split over many blocks (the last block to finish combines
the parts); many outputs get a block or a thread each. Tests marked ``gpu`` need CuPy and an
NVIDIA GPU and run with ``pytest --gpu``; the rendering tests run anywhere, and compile the
kernel with NVRTC where CuPy's NVRTC binding and library are present.
"""
import numpy as np
import pytest

import audiograd as ag
from audiograd.devices.cuda.renderer import SPLIT_BLOCKS, THREADS, column_split_factor, render_cuda, split_factor
from audiograd.schedule.fuse import KernelStep, create_schedule
from nvrtc_check import compile_sm90

gpu = pytest.mark.gpu
BIG = 1 << 24


def _randn(*shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _both(fn, *arrays, rtol=1e-5, atol=1e-6):
    """``fn`` on CPU tensors and on CUDA tensors made from ``arrays``; compare, return the GPU result."""
    ref = fn(*[ag.tensor(a, device="cpu") for a in arrays]).numpy()
    out = fn(*[ag.tensor(a, device="cuda") for a in arrays])
    assert out.device == "cuda"
    got = out.numpy()
    assert got.dtype == ref.dtype and got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=atol)
    return got


def _kernels(t):
    """(name, source, launch) of every kernel computing the tensor ``t`` (rendered, not run)."""
    return [render_cuda(st.kernel) for st in create_schedule([t.node]) if isinstance(st, KernelStep)]


# ---- rendering (no GPU needed) ----------------------------------------------------------------

def test_split_factor_fills_the_gpu_only_for_few_long_reductions():
    assert split_factor(1, BIG) == SPLIT_BLOCKS
    assert split_factor(4, BIG) == SPLIT_BLOCKS // 4
    assert split_factor(1, 1000) == 1          # one block already holds the whole reduction
    assert split_factor(4096, BIG) == 1        # enough outputs to fill the GPU on their own
    assert 1 < split_factor(300, 1 << 20) < 8


@pytest.mark.parametrize("dtype,op", [(np.float32, "sum"), (np.float64, "max"), (np.int32, "sum"),
                                      (np.int64, "max"), (np.bool_, "max")])
def test_split_reduction_kernel_source(dtype, op):
    x = ag.tensor(np.zeros((4, 1 << 20), dtype), device="cpu")
    t = x.sum(1) if op == "sum" else x.amax(1)
    (name, src, launch), = _kernels(t)
    split = split_factor(4, 1 << 20)
    assert split > 1 and launch.grid == 4 * split and launch.block == THREADS
    acc = {"sum": "double" if dtype in (np.float32, np.float64) else "long long"}.get(
        op, {np.float64: "double", np.int64: "long long", np.bool_: "unsigned char"}.get(dtype))
    assert f"__device__ {acc} ag_parts[{4 * split}];" in src
    assert "__device__ unsigned int ag_arrived[4];" in src
    assert f"ag_split_reduce(acc, ag_parts + o * {split}, ag_arrived + o, {split}u, s," in src
    assert src.count("__global__") == 1 and f" {name}(" in src
    compile_sm90(src)


def test_split_reduction_with_epilogue_kernel_source():
    x = ag.tensor(np.zeros((4, 1 << 20), np.float32), device="cpu")
    y = ag.tensor(np.zeros((4, 1), np.float32), device="cpu")
    (_, src, launch), = _kernels((x.exp().sum(1, keepdim=True) * 0.25 + y).log())
    assert launch.grid == 4 * split_factor(4, 1 << 20)
    tail = src[src.index("ag_split_reduce(acc"):]
    assert "log" in tail and "b2[" in tail and "b0[" in tail   # the epilogue runs in the last block
    compile_sm90(src)


@pytest.mark.parametrize("shape,split", [((1 << 20, 64), True), ((100000, 33), True), ((512, 1 << 16), False)])
def test_column_reduction_kernel_source(shape, split):
    """Data contiguous along the outputs: a block takes 32 neighbouring outputs, split over blocks
    when there are few such tiles."""
    (_, src, launch), = _kernels(ag.tensor(np.zeros(shape, np.float32), device="cpu").sum(0))
    tiles = -(-shape[1] // 32)
    factor = column_split_factor(tiles, 32, shape[0])
    assert (factor > 1) == split
    assert launch.grid == min(tiles, 1 << 16) * factor and launch.block == THREADS
    assert "acc = ag_column_reduce(acc, ag_cols, 32u, 8u, AgSum());" in src
    assert ("ag_split_columns(acc" in src) == split and ("ag_parts" in src) == split
    compile_sm90(src)


def test_short_and_many_output_reductions_are_not_split():
    for t in (ag.tensor(np.zeros((1 << 16, 64), np.float32), device="cpu").sum(1),
              ag.tensor(np.zeros((4096, 4096), np.float32), device="cpu").sum(1),
              ag.tensor(np.zeros((64, 1000), np.float32), device="cpu").amax(1),
              ag.tensor(np.zeros((1000, 33), np.float32), device="cpu") * 2):
        for _, src, _ in _kernels(t):
            assert "ag_parts" not in src and "ag_split_reduce(acc" not in src
            compile_sm90(src)


# ---- on the GPU -------------------------------------------------------------------------------

def _tol(dtype):
    """Both sides sum in double, in different orders: float64 results differ by rounding only."""
    return dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-9)


@gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_full_reductions_of_a_large_tensor(dtype):
    a = _randn(BIG, dtype=dtype, seed=1)
    tol = _tol(dtype)
    _both(lambda x: x.sum(), a, **tol)
    _both(lambda x: x.mean(), a, **tol)
    _both(lambda x: x.amax(), a)
    _both(lambda x: x.amin(), a)
    _both(lambda x: (x * x).sum().sqrt(), a, **tol)
    _both(lambda x: x.abs().sum(), a, **tol)
    _both(lambda x: x.reshape(1 << 12, 1 << 12).sum(), a, **tol)


@gpu
@pytest.mark.parametrize("shape,axes", [
    ((4, 1 << 22), 1),            # a few long rows
    ((1 << 22, 4), 0),            # a few long columns
    ((3, 1 << 20, 5), (0, 1)),    # a long reduction over two loops, five outputs
    ((300, 1 << 16), 1),          # a few hundred outputs: a few blocks each
    ((1 << 16, 256), 0),          # columns: tiles of 32 outputs, split over blocks
    ((100000, 33), 0),            # columns, the last tile one output wide
    ((5, 3000, 40), (0, 1)),
    ((2, 1000, 300), 1),          # columns with an outer output loop
    ((512, 1 << 15), 0),          # many column tiles, one block each
    ((64, 5000), 1),              # a block per output
    ((4096, 1024), 1),            # many outputs with long reductions
    ((1 << 18, 48), 1),           # many outputs with short reductions
    ((1 << 20, 3), 1),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reductions_over_axes(shape, axes, dtype):
    a = _randn(*shape, dtype=dtype, seed=2)
    tol = _tol(dtype)
    _both(lambda x: x.sum(axes), a, **tol)
    _both(lambda x: x.mean(axes, keepdim=True), a, **tol)
    _both(lambda x: x.amax(axes), a)
    _both(lambda x: x.amin(axes, keepdim=True), a)
    _both(lambda x: (x * x).sum(axes).sqrt(), a, **tol)


@gpu
def test_integer_and_bool_reductions():
    i = np.random.default_rng(3).integers(-1000, 1000, BIG).astype(np.int32)
    j = np.random.default_rng(4).integers(-(1 << 40), 1 << 40, (4, 1 << 20)).astype(np.int64)
    _both(lambda x: x.sum(), i)
    _both(lambda x: x.amax(), i)
    _both(lambda x: x.amin(), i)
    _both(lambda x: (x > 0).sum(), i)
    _both(lambda x: x.sum(1), j)
    _both(lambda x: x.amax(1), j)
    _both(lambda x: (x > (1 << 39)).amax(1), j)


@gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_epilogues_of_split_reductions(dtype):
    a, b = _randn(4, 1 << 20, dtype=dtype, seed=5), _randn(4, 1, dtype=dtype, seed=6)
    tol = _tol(dtype)
    _both(lambda x, y: (x.exp().sum(1, keepdim=True) * 0.25 + y.abs()).log(), a, b, **tol)
    _both(lambda x, y: x.sum(1, keepdim=True) * (1.0 / x.shape[1]) - y, a, b, **tol)
    _both(lambda x, y: x.amax(1, keepdim=True).maximum(y) * 2, a, b)
    _both(lambda x: x.logsumexp(1), a, **tol)
    _both(lambda x: x.var(1), a, **tol)
    _both(lambda x: x.softmax(1)[:, :1000], a, **tol)


@gpu
def test_nan_and_inf_in_split_reductions():
    a = _randn(4, 1 << 20, seed=7)
    a[1, 123456] = np.nan
    a[2, 777] = np.inf
    a[3, 1 << 19] = -np.inf
    _both(lambda x: x.amax(1), a)
    _both(lambda x: x.amin(1), a)
    _both(lambda x: x.sum(1), a)


@gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_split_reductions_are_deterministic(dtype):
    a = _randn(BIG, dtype=dtype, seed=8) * 100 + 3
    x = ag.tensor(a, device="cuda")
    for fn in (lambda t: t.sum(), lambda t: t.reshape(8, -1).sum(1), lambda t: (t * t).mean(),
               lambda t: t.reshape(-1, 4).sum(0)):
        runs = [fn(x).numpy() for _ in range(3)]
        ref = fn(ag.tensor(a, device="cpu")).numpy()
        np.testing.assert_allclose(runs[0], ref, **_tol(dtype))
        for r in runs[1:]:
            assert r.tobytes() == runs[0].tobytes()


@gpu
@pytest.mark.parametrize("shape,axis", [((4, 1 << 22), 1), ((1 << 20, 16), 0)])
def test_split_reduction_replays_in_a_cuda_graph(shape, axis):
    from audiograd.devices.cuda.device import get_device
    dev = get_device()
    cp = dev.cp
    a = _randn(*shape, seed=9)
    (name, src, launch), = _kernels(ag.tensor(a, device="cpu").sum(axis, keepdim=True) * 0.5)
    assert "ag_parts" in src
    fn, = dev.get_many([(name, src, launch)])
    x, out = cp.asarray(a), cp.zeros(np.sum(a, axis, keepdims=True).shape, np.float32)
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        fn([out, x])   # loads the module before the capture
        stream.begin_capture()
        fn([out, x])
        graph = stream.end_capture()
        for k in range(3):
            x *= 2
            out.fill(0)
            graph.launch(stream)
            stream.synchronize()
            want = a.astype(np.float64).sum(axis, keepdims=True) * 0.5 * 2 ** (k + 1)
            np.testing.assert_allclose(cp.asnumpy(out), want, rtol=1e-5)
