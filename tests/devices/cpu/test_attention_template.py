"""The CPU's fused attention kernel (``devices.cpu.attention_template``): with numpy's BLAS for
its products and with the plain loops used where that BLAS is not found, over one and several
query blocks, one and two threads, with and without a bias, against a float64 numpy reference.

Tolerances: 1e-12 (float64) and 2e-6 (float32) absolute, on outputs of order one.
"""
import numpy as np
import pytest

import audiograd as ag
import audiograd.devices.cpu.library as cpu_library
from audiograd.devices.cpu.attention_template import numpy_blas, query_block
from audiograd.nn.functional import scaled_dot_product_attention as sdpa

pytestmark = pytest.mark.cpu_only  # the C kernel and its BLAS


def _reference(q, k, v, bias, scale):
    s = np.einsum("...qd,...kd->...qk", q, k) * scale + (0 if bias is None else bias)
    m = s.max(-1, keepdims=True)
    e = np.exp(s - np.where(np.isneginf(m), 0, m))
    total = e.sum(-1, keepdims=True)
    return (e / np.where(total > 0, total, 1)) @ v


@pytest.fixture(params=["blas", "loops"])
def products(request, monkeypatch):
    if request.param == "loops":
        monkeypatch.setattr(cpu_library, "numpy_blas", lambda: None)
    elif numpy_blas() is None:
        pytest.skip("numpy's OpenBLAS is not found in this process (the kernel uses its plain loops)")
    return request.param


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-6)])
@pytest.mark.parametrize("lq,lk,with_bias", [(1, 1, False), (150, 37, True), (64, 129, False), (97, 5, True)])
def test_kernel_matches_numpy(products, threads, dtype, tol, lq, lk, with_bias, monkeypatch):
    monkeypatch.setattr(ag.config, "num_threads", threads)
    rng = np.random.default_rng(lq * 7 + lk)
    q, k, v = (rng.standard_normal(s).astype(dtype) for s in ((2, 3, lq, 24), (2, 3, lk, 24), (2, 3, lk, 10)))
    bias = None
    if with_bias:
        bias = rng.standard_normal((1, 3, lq, lk)).astype(dtype)
        bias[0, 1, lq // 2] = -np.inf   # a fully masked query gives zeros
    ref = _reference(*(x.astype(np.float64) for x in (q, k, v)), None if bias is None else bias.astype(np.float64),
                     1 / np.sqrt(24))
    got = sdpa(ag.tensor(q), ag.tensor(k), ag.tensor(v), None if bias is None else ag.tensor(bias)).numpy()
    assert got.dtype == dtype
    assert np.abs(got - ref).max() <= tol
    if with_bias:
        assert np.all(got[:, 1, lq // 2] == 0)


def test_query_blocks_are_even_and_feed_every_thread():
    assert query_block(1025, 48, 2) == 114 and query_block(128, 12, 2) == 128 and query_block(1, 1, 2) == 1
    assert query_block(1025, 1, 8) == 32   # 33 blocks for 8 threads
    for lq in (1, 63, 65, 129, 1025, 4097):
        qb = query_block(lq, 2, 2)
        blocks = -(-lq // qb)
        assert qb <= 128 and blocks * qb - lq < blocks


@pytest.mark.parametrize("threads", [2, 4])
def test_blas_thread_count_is_restored(threads, monkeypatch):
    """The kernel runs numpy's BLAS single-threaded inside its parallel region; afterwards BLAS
    must have its thread count back (an OpenBLAS whose setting is global once kept 1 after a
    race between workers, halving the speed of every later product)."""
    import ctypes
    blas = numpy_blas()
    if blas is None:
        pytest.skip("numpy's OpenBLAS is not found in this process")
    lib = ctypes.CDLL(blas.path)
    getter = next((getattr(lib, s) for s in ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
                                             "openblas_get_num_threads64_", "openblas_get_num_threads")
                   if hasattr(lib, s)), None)
    if getter is None:
        pytest.skip("this OpenBLAS does not report its thread count")
    monkeypatch.setattr(ag.config, "num_threads", threads)
    before = getter()
    q = ag.tensor(np.random.default_rng(0).standard_normal((2, 8, 300, 32)).astype(np.float32))
    for _ in range(5):
        sdpa(q, q, q).numpy()
    assert getter() == before
