"""Matrix products on the GPU with cuBLAS, on the current CuPy stream.

A product is described first as a list of ``gemm_plan.Gemm`` records (pure data: sizes,
leading dimensions and element offsets into a few buffers), then ``run`` issues them;
``gemm_plan.plan_matmul`` turns a batched, broadcast, strided ``out = a @ b`` into such
records, reading each operand in place whenever cuBLAS can.

Every call binds the handle to the current stream and passes ``alpha`` / ``beta`` from host
memory kept alive here, and nothing allocates or synchronizes, so the calls can be captured
into CUDA graphs. cuBLAS is called through ctypes on a handle of our own: CuPy's wrappers
refuse to run while a stream is capturing, and our handle's settings (math mode, pointer mode)
never leak into CuPy's. Where the library cannot be bound that way, CuPy's wrappers are used.

Precision follows ``config.cuda_matmul_precision`` for float32: "fp32" computes in exact fp32
(the handle's math mode stays CUBLAS_DEFAULT_MATH, so cuBLAS never substitutes TF32), "tf32"
and "bf16" let tensor cores round the inputs to TF32 / bfloat16 while data and accumulation stay
fp32. "bf16" only permits bfloat16: cuBLAS may serve it with TF32 kernels (it did for plain
fp32 products on an H200), so its error is at most bfloat16's. float64 is always exact.
"""
from __future__ import annotations

import ctypes
import os
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from ...config import config
from .gemm_plan import Gemm, MatmulPlan, plan_matmul

_CUDA_R_32F, _CUDA_R_64F = 0, 1
_COMPUTE_32F, _COMPUTE_32F_FAST_16BF, _COMPUTE_32F_FAST_TF32, _COMPUTE_64F = 68, 75, 77, 70
_GEMM_DEFAULT = -1
_DEFAULT_MATH = 0
_POINTER_MODE_HOST = 0
# cuBLAS's Hopper kernels want a large workspace (NVIDIA recommends 32 MiB on sm90); without one
# set by the caller it falls back to a small default pool, and graph capture is safer with a
# fixed buffer than with one the library may reallocate.
WORKSPACE_BYTES = 32 << 20
_PRECISIONS = {"fp32": _COMPUTE_32F, "tf32": _COMPUTE_32F_FAST_TF32, "bf16": _COMPUTE_32F_FAST_16BF}


class _Cublas:
    """cuBLAS entry points: ctypes over the loaded library with a handle per device, or CuPy's
    wrappers on CuPy's handle (those cannot be captured into graphs)."""

    def __init__(self):
        import cupy
        self.cp = cupy
        from cupy_backends.cuda.libs import cublas  # loads the library CuPy links
        self.cupy_cublas = cublas
        self.lib = _bind(_find_library())
        self.handles: Dict[int, int] = {}
        self.workspace_bytes = WORKSPACE_BYTES
        self._workspaces: Dict[Tuple[int, int], object] = {}
        self._scalars: Dict[Tuple[str, float], np.ndarray] = {}

    def scalar(self, dtype: str, value: float) -> int:
        """Host address of ``value`` as ``dtype``, kept alive for graph replays' sake."""
        arr = self._scalars.get((dtype, value))
        if arr is None:
            arr = self._scalars[(dtype, value)] = np.array([value], dtype)
        return arr.ctypes.data

    def handle(self) -> int:
        """The handle for the current device, bound to the current stream."""
        stream = self.cp.cuda.get_current_stream().ptr
        if self.lib is None:
            h = self.cp.cuda.device.get_cublas_handle()
            self.cupy_cublas.setPointerMode(h, _POINTER_MODE_HOST)
            self.cupy_cublas.setMathMode(h, _DEFAULT_MATH)
            return h  # CuPy's wrappers bind the stream themselves
        dev = self.cp.cuda.runtime.getDevice()
        h = self.handles.get(dev)
        if h is None:
            ptr = ctypes.c_void_p()
            _check(self.lib.cublasCreate_v2(ctypes.byref(ptr)), "cublasCreate")
            h = self.handles[dev] = ptr.value
            _check(self.lib.cublasSetPointerMode_v2(h, _POINTER_MODE_HOST), "cublasSetPointerMode")
            _check(self.lib.cublasSetMathMode(h, _DEFAULT_MATH), "cublasSetMathMode")
        _check(self.lib.cublasSetStream_v2(h, stream), "cublasSetStream")
        if self.workspace_bytes:   # setting the stream drops the workspace: set it again
            ws = self._workspaces.get((dev, self.workspace_bytes))
            if ws is None:
                ws = self._workspaces[(dev, self.workspace_bytes)] = self.cp.empty(self.workspace_bytes, self.cp.uint8)
            _check(self.lib.cublasSetWorkspace_v2(h, ws.data.ptr, self.workspace_bytes), "cublasSetWorkspace")
        return h


def _find_library() -> Optional[ctypes.CDLL]:
    """The cuBLAS library already loaded in this process (by CuPy), else one found on disk."""
    if os.name != "posix":
        return None
    for soname in ("libcublas.so.13", "libcublas.so.12", "libcublas.so.11"):
        try:
            return ctypes.CDLL(soname, mode=os.RTLD_NOLOAD | os.RTLD_NOW)
        except OSError:
            pass
    try:
        from cuda import pathfinder
        path = pathfinder.load_nvidia_dynamic_lib("cublas").abs_path
        if path:
            return ctypes.CDLL(path)
    except Exception:
        pass
    return None


def _bind(lib: Optional[ctypes.CDLL]) -> Optional[ctypes.CDLL]:
    """``lib`` with the argument types of the entry points used here, or None if one is missing."""
    if lib is None:
        return None
    vp, i, ll = ctypes.c_void_p, ctypes.c_int, ctypes.c_longlong
    sigs = {
        "cublasCreate_v2": [ctypes.POINTER(vp)],
        "cublasSetStream_v2": [vp, vp],
        "cublasSetPointerMode_v2": [vp, i],
        "cublasSetMathMode": [vp, i],
        "cublasSetWorkspace_v2": [vp, vp, ctypes.c_size_t],
        "cublasGemmEx": [vp, i, i, i, i, i, vp, vp, i, i, vp, i, i, vp, vp, i, i, i, i],
        "cublasGemmStridedBatchedEx": [vp, i, i, i, i, i, vp, vp, i, i, ll, vp, i, i, ll, vp, vp, i, i, ll,
                                       i, i, i],
    }
    try:
        for name, args in sigs.items():
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = args, ctypes.c_int
    except AttributeError:
        return None
    return lib


def _check(status: int, what: str) -> None:
    if status != 0:
        raise RuntimeError(f"{what} failed with cuBLAS status {status}")


_CUBLAS: Optional[_Cublas] = None


def _cublas() -> _Cublas:
    global _CUBLAS
    if _CUBLAS is None:
        _CUBLAS = _Cublas()
    return _CUBLAS


def compute_type(dtype) -> Tuple[int, int, str]:
    """(cuBLAS compute type, CUDA data type, scalar dtype) for operands of ``dtype``."""
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        return _COMPUTE_64F, _CUDA_R_64F, "float64"
    if dtype == np.float32:
        prec = config.cuda_matmul_precision
        if prec not in _PRECISIONS:
            raise ValueError(f"config.cuda_matmul_precision must be one of {sorted(_PRECISIONS)}, got {prec!r}")
        return _PRECISIONS[prec], _CUDA_R_32F, "float32"
    raise TypeError(f"cuBLAS products here take float32 or float64, got {dtype}")


def gemm(transa: int, transb: int, m: int, n: int, k: int, a_ptr: int, lda: int, b_ptr: int, ldb: int,
         c_ptr: int, ldc: int, dtype, alpha: float = 1.0, beta: float = 0.0) -> None:
    """``C = alpha * op(A) @ op(B) + beta * C`` on raw device pointers (column-major, as cuBLAS)."""
    _issue(_bind_call(dtype), transa, transb, m, n, k, a_ptr, lda, 0, b_ptr, ldb, 0, c_ptr, ldc, 0, 1, alpha, beta)


def gemm_strided_batched(transa: int, transb: int, m: int, n: int, k: int, a_ptr: int, lda: int, stride_a: int,
                         b_ptr: int, ldb: int, stride_b: int, c_ptr: int, ldc: int, stride_c: int, batch: int,
                         dtype, alpha: float = 1.0, beta: float = 0.0) -> None:
    """``batch`` products like ``gemm``, the i-th reading and writing its operands
    ``i * stride_*`` elements on."""
    _issue(_bind_call(dtype), transa, transb, m, n, k, a_ptr, lda, stride_a, b_ptr, ldb, stride_b, c_ptr, ldc,
           stride_c, batch, alpha, beta)


def run(gemms: Sequence[Gemm], ptrs: Sequence[int], dtype) -> None:
    """Issue ``gemms`` over buffers starting at device addresses ``ptrs``, of ``dtype``."""
    size = np.dtype(dtype).itemsize
    call = _bind_call(dtype)
    for g in gemms:
        _issue(call, g.transa, g.transb, g.m, g.n, g.k, ptrs[g.a[0]] + g.a[1] * size, g.lda, g.stride_a,
               ptrs[g.b[0]] + g.b[1] * size, g.ldb, g.stride_b, ptrs[g.c[0]] + g.c[1] * size, g.ldc, g.stride_c,
               g.batch, 1.0, g.beta)


def _bind_call(dtype) -> tuple:
    """(library, handle on the current stream, compute type, data type, scalar dtype)."""
    ct, dt, st = compute_type(dtype)
    blas = _cublas()
    return blas, blas.handle(), ct, dt, st


def _issue(call: tuple, transa, transb, m, n, k, a_ptr, lda, stride_a, b_ptr, ldb, stride_b, c_ptr, ldc, stride_c,
           batch, alpha, beta) -> None:
    blas, h, ct, dt, st = call
    al, be = blas.scalar(st, alpha), blas.scalar(st, beta)
    if blas.lib is None:
        if batch == 1:
            blas.cupy_cublas.gemmEx(h, transa, transb, m, n, k, al, a_ptr, dt, lda, b_ptr, dt, ldb, be, c_ptr,
                                    dt, ldc, ct, _GEMM_DEFAULT)
        else:
            blas.cupy_cublas.gemmStridedBatchedEx(h, transa, transb, m, n, k, al, a_ptr, dt, lda, stride_a, b_ptr,
                                                  dt, ldb, stride_b, be, c_ptr, dt, ldc, stride_c, batch, ct,
                                                  _GEMM_DEFAULT)
    elif batch == 1:
        _check(blas.lib.cublasGemmEx(h, transa, transb, m, n, k, al, a_ptr, dt, lda, b_ptr, dt, ldb, be, c_ptr, dt,
                                     ldc, ct, _GEMM_DEFAULT), "cublasGemmEx")
    else:
        _check(blas.lib.cublasGemmStridedBatchedEx(h, transa, transb, m, n, k, al, a_ptr, dt, lda, stride_a, b_ptr,
                                                   dt, ldb, stride_b, be, c_ptr, dt, ldc, stride_c, batch, ct,
                                                   _GEMM_DEFAULT), "cublasGemmStridedBatchedEx")


# ---- numpy-style matmul on CuPy arrays -----------------------------------------------------------
def _elem_strides(x) -> Optional[Tuple[int, ...]]:
    size = x.itemsize
    if any(s % size for s in x.strides):
        return None
    return tuple(s // size for s in x.strides)


def matmul(out, a, b) -> None:
    """``out[...] = a @ b`` for CuPy arrays with numpy's matmul semantics (1-D operands,
    broadcast batch dims), reading strided operands in place where cuBLAS can and copying the
    others (RuntimeError if that is needed while the stream is capturing a graph); dtypes other
    than float32 / float64 go to ``cupy.matmul``."""
    cp = _cublas().cp
    dtype = out.dtype
    if a.dtype != dtype or b.dtype != dtype or dtype not in (np.float32, np.float64) or a.ndim == 0 \
            or b.ndim == 0:
        cp.matmul(a, b, out=out)
        return
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    try:
        batch = tuple(np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]))
    except ValueError:
        batch = None
    m, k = a2.shape[-2:]
    n = b2.shape[-1]
    want = batch + (m,) * (a.ndim > 1) + (n,) * (b.ndim > 1) if batch is not None else None
    if batch is None or b2.shape[-2] != k or out.shape != want:
        cp.matmul(a, b, out=out)  # raises numpy's error
        return
    o2 = out
    if a.ndim == 1:
        o2 = cp.expand_dims(o2, o2.ndim if b.ndim == 1 else o2.ndim - 1)
    if b.ndim == 1:
        o2 = cp.expand_dims(o2, o2.ndim)
    if o2.size == 0:
        return
    if k == 0:
        o2.fill(0)
        return
    a2 = cp.broadcast_to(a2, batch + (m, k))
    b2 = cp.broadcast_to(b2, batch + (k, n))
    target = o2
    for _ in range(3):
        strides = [_elem_strides(x) for x in (target, a2, b2)]
        if None in strides:
            plan = MatmulPlan(copy=tuple(nm for nm, s in zip(("out", "a", "b"), strides) if s is None))
        else:
            plan = plan_matmul(target.shape, k, *strides)
            if plan is None:
                break
        if plan.gemms is not None:
            run(plan.gemms, [target.data.ptr, a2.data.ptr, b2.data.ptr], dtype)
            if target is not o2:
                cp.copyto(o2, target)
            return
        if cp.cuda.runtime.streamIsCapturing(cp.cuda.get_current_stream().ptr):
            # a buffer allocated now would be freed while the graph still uses it
            raise RuntimeError("matmul: these operands need a contiguous copy, which a CUDA graph cannot capture")
        if "out" in plan.copy:
            target = cp.empty(o2.shape, dtype)
        if "a" in plan.copy:
            a2 = cp.ascontiguousarray(a2)
        if "b" in plan.copy:
            b2 = cp.ascontiguousarray(b2)
    cp.matmul(a, b, out=out)
