"""The CUDA device: compile kernels with NVRTC through the disk cache, load and launch them
with CuPy, and keep buffers in CuPy's memory pool.

Imported only when a tensor is asked to live on a GPU; creating the device raises a clear
RuntimeError when CuPy or that GPU is missing. One object per GPU ("cuda:0", "cuda:1", ...);
every method makes its GPU current, so the modules here that ask ``get_device()`` get it.
"""
from __future__ import annotations

import contextlib
import hashlib
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Sequence, Set, Tuple

import numpy as np

from ...config import config
from ...dtypes import float32, float64
from ..device import Device, Launch
from ..disk_cache import ENTRY_KEY_SYMBOL, CacheStats, DiskCache, fresh_alias
from ..errors import CompileError
from .residual import fold_residual_adds

# bump when generated CUDA code changes meaning without changing its text
CUDA_CODEGEN_VERSION = "1"
NVRTC_OPTIONS = ("-std=c++17",)


# buffers at least this large are allocated in size classes
SIZE_CLASS_MIN = 1 << 20


def size_class(nbytes: int) -> int:
    """``nbytes`` rounded up to a sixteenth of its power of two (at most 6% more).

    CuPy's pool reuses a free block only for requests no larger than it, and the buffers of one
    network differ by a few bytes (rows padded for a convolution, a crop): without classes a
    long decode keeps caching new, slightly larger blocks beside free ones, and its pool grows
    to several times the memory that is live at once.
    """
    step = max(1 << 16, 1 << max(nbytes.bit_length() - 5, 0))
    return -(-nbytes // step) * step


# NVRTC compiles, cubins loaded from disk, in-memory hits (counters for tests and debugging)
stats = CacheStats()


class CudaKernel:
    """A loaded kernel with its launch configuration; call it with the buffers (CuPy arrays)."""

    __slots__ = ("fn", "grid", "block", "module")

    def __init__(self, fn, grid: int, block: int, module):
        self.fn, self.grid, self.block, self.module = fn, grid, block, module

    def __call__(self, bufs: Sequence) -> None:
        self.fn((self.grid,), (self.block,), tuple(bufs))


def _nvrtc():
    """CuPy's NVRTC binding (the module path moved between CuPy versions)."""
    try:
        from cupy_backends.cuda.libs import nvrtc
    except ImportError:  # older CuPy
        from cupy.cuda import nvrtc
    return nvrtc


class CudaDevice(Device):
    """One GPU: compiles, loads and runs kernels, allocates buffers."""

    kind = "cuda"
    indexed = True
    has_fused_adam = True
    conv_rows_dtypes = frozenset({float32, float64})
    graph_passes = (fold_residual_adds,)

    def __init__(self, index: int = 0):
        super().__init__(index)
        try:
            import cupy
        except ImportError as e:
            raise RuntimeError("device 'cuda' needs CuPy, which is not installed: install audiograd[cuda] "
                               "(cupy-cuda12x, or cupy-cuda13x for CUDA 13)") from e
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as e:  # no driver, or the driver sees no GPU
            raise RuntimeError(f"device 'cuda' is not available: no usable NVIDIA GPU or driver ({e})") from e
        if count < 1:
            raise RuntimeError("device 'cuda' is not available: CuPy sees no NVIDIA GPU")
        if index >= count:
            raise RuntimeError(f"device 'cuda:{index}' is not available: CuPy sees {count} GPU(s), "
                               f"'cuda:0' to 'cuda:{count - 1}'")
        self.cp = cupy
        self.nvrtc = _nvrtc()
        self.gpu, self.count = cupy.cuda.Device(index), count
        self.arch = str(self.gpu.compute_capability)   # e.g. "90"
        self.nvrtc_version = "%d.%d" % tuple(self.nvrtc.getVersion())
        self._fns: Dict[Tuple[str, str], CudaKernel] = {}
        self._stale_paths: Set[str] = set()  # cubin paths that held a wrong entry in this process
        self._lock = threading.Lock()
        self._by_gpu[index] = self

    _by_gpu: Dict[int, "CudaDevice"] = {}   # every GPU's device object, by number

    # ---- buffers -------------------------------------------------------------------------------
    def empty(self, shape, dtype):
        """An uninitialized C-contiguous device array from CuPy's memory pool; large ones are
        carved from a block of their size class (see ``size_class``)."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        with self.gpu:
            if nbytes < SIZE_CLASS_MIN:
                return self.cp.empty(shape, dtype)
            return self.cp.empty(size_class(nbytes), np.uint8)[:nbytes].view(dtype).reshape(shape)

    def from_host(self, array: np.ndarray):
        """A device copy of a host array."""
        with self.gpu:
            return self.cp.asarray(np.ascontiguousarray(array).reshape(np.shape(array)))

    def to_host(self, array) -> np.ndarray:
        """A host (numpy) copy of a device array."""
        with self.gpu:
            return self.cp.asnumpy(array)

    def fill(self, buf, value) -> None:
        with self.gpu:
            buf.fill(value)

    def address(self, buf) -> int:
        return buf.data.ptr

    def owns(self, buf) -> bool:
        return isinstance(buf, self.cp.ndarray) and buf.device.id == self.index

    def synchronize(self) -> None:
        self.gpu.synchronize()

    def strided(self, buf, view):
        """A CuPy array reading ``buf`` through an unmasked ``view`` (no copy)."""
        it = buf.itemsize
        return self.cp.ndarray(view.shape, buf.dtype, memptr=buf.data + view.offset * it,
                               strides=tuple(s * it for s in view.strides))

    def matmul(self, out, a, b) -> None:
        """``out = a @ b`` with cuBLAS (batched and broadcast like numpy), reading strided
        operands in place where it can, at the precision ``config.cuda_matmul_precision`` names."""
        from . import blas
        blas.matmul(out, a, b)

    def copy(self, dst, src) -> None:
        """Copy ``src``'s elements into ``dst`` (same shape)."""
        with self.gpu:
            self.cp.copyto(dst, src)

    # ---- steps ---------------------------------------------------------------------------------
    def compile(self, steps: Sequence) -> List[Launch]:
        from .launches import compile_steps
        with self.gpu:
            return compile_steps(self, steps)

    def fused_adam(self, ctype: str, sizes: Sequence[int], **hyper) -> Launch:
        from .adam import fused_adam_launches
        from .launches import OnGpu
        with self.gpu:
            return OnGpu(self, fused_adam_launches(ctype, sizes, **hyper), f"adam_{ctype}")

    def graph_replay(self, launch_all):
        from .graph_replay import GraphReplay
        with self.gpu:
            return GraphReplay(self, launch_all)

    # ---- kernels -------------------------------------------------------------------------------
    def key(self, source: str) -> str:
        """The disk-cache key: source, NVRTC version, target arch, options and codegen version."""
        h = hashlib.sha256()
        for part in ("cuda", CUDA_CODEGEN_VERSION, self.nvrtc_version, self.arch, " ".join(NVRTC_OPTIONS), source):
            h.update(part.encode())
            h.update(b"\0")
        return h.hexdigest()

    def _compile(self, src: Path, dst: Path) -> None:
        nvrtc = self.nvrtc
        t0 = time.perf_counter()
        prog = nvrtc.createProgram(src.read_text(), src.name, (), ())
        try:
            try:
                nvrtc.compileProgram(prog, list(NVRTC_OPTIONS) + [f"--gpu-architecture=sm_{self.arch}"])
            except Exception as e:
                log = nvrtc.getProgramLog(prog)
                raise CompileError(f"{e}\n{log}", src, tool="NVRTC", hint="") from None
            dst.write_bytes(nvrtc.getCUBIN(prog))
        finally:
            nvrtc.destroyProgram(prog)
        with self._lock:
            stats.compiled += 1
        if config.debug:
            print(f"[audiograd] nvrtc compiled {src} in {1e3 * (time.perf_counter() - t0):.0f} ms", file=sys.stderr)

    def _load_checked(self, path: Path, name: str, key: str):
        """``(module, function)`` if the cubin at ``path`` is the entry for ``key`` and holds ``name``,
        else ``(None, what is wrong)``; nothing of the module runs before both checks pass."""
        stale = str(path) in self._stale_paths
        try:
            with fresh_alias(path) if stale else contextlib.nullcontext(path) as load_path:
                module = self.cp.RawModule(path=str(load_path))  # CuPy loads a path once per process
                function = module.get_function(name)
            stored = np.zeros(len(key) + 1, np.uint8)
            module.get_global(ENTRY_KEY_SYMBOL).copy_to_host(stored.ctypes.data, stored.nbytes)
            problem = None if stored.tobytes() == key.encode() + b"\0" else "is not the cubin built for its key"
        except self.cp.cuda.driver.CUDADriverError as e:
            problem = f"cannot be loaded or lacks {name} or {ENTRY_KEY_SYMBOL} ({e})"
        if problem is not None:
            self._stale_paths.add(str(path))
            return None, problem
        return (module, function), None

    def _load_entry(self, cache: DiskCache, key: str, name: str, source: str):
        """The checked ``(module, function)`` of the entry for ``key``, built (or rebuilt) if needed,
        and whether it was compiled here."""
        def build(force: bool):
            built = []
            path = cache.build(key, bind_to_key(source, key), lambda s, d: built.append(self._compile(s, d)),
                               force=force)
            return path, bool(built)

        path = cache.lookup(key)
        built = False
        if path is None:
            path, built = build(False)
        loaded, problem = self._load_checked(path, name, key)
        if loaded is None and not built:  # an entry that is not what its key says is rebuilt, never run
            stats.rejected += 1
            if config.debug:
                print(f"[audiograd] cache entry {path} {problem}; rebuilding it", file=sys.stderr)
            path, built = build(True)
            loaded, problem = self._load_checked(path, name, key)
        if loaded is None:
            raise CompileError(f"error: the cubin compiled from it {problem}", cache.source_path(key),
                               tool="NVRTC", hint="")
        return loaded, built

    def get_many(self, kernels: Sequence[Tuple[str, str, object]]) -> List[CudaKernel]:
        """Launchable kernels for (name, source, launch) triples, compiled or found in the cache."""
        out: List[CudaKernel] = []
        cache = None
        for name, source, launch in kernels:
            fn = self._fns.get((name, source))
            if fn is not None:
                stats.memory_hits += 1
                out.append(fn)
                continue
            cache = cache or DiskCache(config.cache_dir, binary_suffix=".cubin", source_suffix=".cu")
            key = self.key(source)
            (module, function), built = self._load_entry(cache, key, name, source)
            if not built:
                stats.loaded += 1
            fn = CudaKernel(function, launch.grid, launch.block, module)
            if config.debug >= 2:
                print(f"[audiograd] cuda kernel {name}:\n{source}", file=sys.stderr)
            self._fns[(name, source)] = fn
            out.append(fn)
        return out


def bind_to_key(source: str, key: str) -> str:
    """The CUDA source compiled for a cache entry: the kernel plus a device constant holding the
    entry's key, which the loader reads back so that a cubin copied into another entry's place
    is never run."""
    return f'{source}\nextern "C" __device__ const char {ENTRY_KEY_SYMBOL}[] = "{key}";\n'


def get_device() -> CudaDevice:
    """The device object of the current GPU (the one whose method is running), created on
    first use (RuntimeError if CuPy or a GPU is missing)."""
    import cupy
    index = cupy.cuda.runtime.getDevice()
    dev = CudaDevice._by_gpu.get(index)
    if dev is None:
        from ..registry import get_device as named
        dev = named(f"cuda:{index}")
    return dev


DEVICE_CLASS = CudaDevice
