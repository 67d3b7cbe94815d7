"""The CPU device: compile C kernels through the disk cache, load them, call them."""
from __future__ import annotations

import ctypes
import hashlib
import os
import sys
import threading
import time
import weakref
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List, Sequence, Set, Tuple

import numpy as np

from ...config import config
from ..disk_cache import ENTRY_KEY_SYMBOL, CacheStats, DiskCache, fresh_alias
from ..errors import CompileError
from .compiler import compile_shared, compiler_identity, find_compiler

# bump when generated code changes meaning without changing its text
CODEGEN_VERSION = "1"


def _load_libmvec() -> Tuple[str, ...]:
    """glibc's vector math library lets gcc vectorize sin/exp/log; load it for every kernel.

    Returns the defines telling the prelude which generation of it is present.
    """
    if not sys.platform.startswith("linux"):
        return ()
    try:
        lib = ctypes.CDLL("libmvec.so.1", mode=ctypes.RTLD_GLOBAL)
    except OSError:
        return ()
    return ("-DAG_MVEC", "-DAG_MVEC2") if hasattr(lib, "_ZGVbN4v_tanhf") else ("-DAG_MVEC",)


MVEC_DEFINES = _load_libmvec()


def _cpu_signature() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return hashlib.sha256(line.encode()).hexdigest()[:16]
    except OSError:
        pass
    import platform
    return platform.machine() + platform.processor()


stats = CacheStats()


class CPUCompiler:
    """Kernels by (name, source): the most recently used ``config.loaded_kernels`` stay loaded;
    older ones are unloaded once no program uses them any more, because every loaded library
    costs the process several memory mappings, of which Linux allows only about 65,000."""

    def __init__(self):
        self._fns: "OrderedDict[Tuple[str, str], object]" = OrderedDict()
        self._lock = threading.Lock()
        self._sig = _cpu_signature()
        self._stale_paths: Set[str] = set()  # paths whose library in this process was found wrong

    def _flags(self) -> Tuple[str, ...]:
        return tuple(config.cflags) + MVEC_DEFINES

    def key(self, source: str, cc_id: str) -> str:
        h = hashlib.sha256()
        for part in (CODEGEN_VERSION, cc_id, " ".join(self._flags()), self._sig, source):
            h.update(part.encode())
            h.update(b"\0")
        return h.hexdigest()

    def get_many(self, kernels: Sequence[Tuple[str, str]]) -> List[object]:
        """Callable functions for (name, source) pairs; missing ones are compiled in parallel."""
        out: List[object] = [self._fns.get(k) for k in kernels]
        for k, fn in zip(kernels, out):
            if fn is not None:
                self._fns.move_to_end(k)
        stats.memory_hits += sum(fn is not None for fn in out)
        todo = [i for i, fn in enumerate(out) if fn is None]
        if not todo:
            return out
        cache = DiskCache(config.cache_dir)
        cc_path = find_compiler(config.cc)
        cc_id, flags = compiler_identity(cc_path), self._flags()

        def compile_fn(src: Path, dst: Path) -> None:
            t0 = time.perf_counter()
            compile_shared(cc_path, flags, src, dst)
            with self._lock:
                stats.compiled += 1
            if config.debug:
                print(f"[audiograd] compiled {src} in {1e3 * (time.perf_counter() - t0):.0f} ms", file=sys.stderr)

        def obtain(i: int):
            name, source = kernels[i]
            key = self.key(source, cc_id)
            fn = self._load_entry(cache, key, name, source, compile_fn)
            if config.debug >= 2:
                print(f"[audiograd] kernel {name}:\n{source}", file=sys.stderr)
            return fn

        workers = max(1, min(len(todo), config.num_threads))
        if workers == 1:
            fns = [obtain(i) for i in todo]
        else:
            with ThreadPoolExecutor(workers) as ex:
                fns = list(ex.map(obtain, todo))
        for i, fn in zip(todo, fns):
            self._fns[kernels[i]] = fn
            out[i] = fn
        while len(self._fns) > max(config.loaded_kernels, 1):
            self._fns.popitem(last=False)
        return out

    def _load_entry(self, cache: DiskCache, key: str, name: str, source: str, compile_fn):
        """The kernel ``name`` from the cache entry ``key``, built (or rebuilt) when missing or wrong."""
        path = cache.lookup(key)
        if path is not None:
            fn, problem = self._load_checked(path, name, key)
            if fn is not None:
                with self._lock:
                    stats.loaded += 1
                return fn
            self._note_rejected(path, problem)
        force = path is not None
        for _ in range(2):
            built: List[bool] = []

            def compile_and_count(src: Path, dst: Path) -> None:
                compile_fn(src, dst)
                built.append(True)

            path = cache.build(key, bind_to_key(source, key), compile_and_count, force=force)
            fn, problem = self._load_checked(path, name, key)
            if fn is not None:
                if not built:  # built meanwhile by another process
                    with self._lock:
                        stats.loaded += 1
                return fn
            if built:
                break
            self._note_rejected(path, problem)
            force = True
        raise CompileError(f"error: the library compiled from it {problem}", cache.source_path(key))

    def _note_rejected(self, path: Path, problem: str) -> None:
        with self._lock:
            stats.rejected += 1
        if config.debug:
            print(f"[audiograd] cache entry {path} {problem}; rebuilding it", file=sys.stderr)

    def _load_checked(self, path: Path, name: str, key: str):
        """(function, None) if the library at ``path`` is the entry for ``key`` and exports ``name``,
        else (None, what is wrong). Nothing in the library is called before both checks pass."""
        # libgomp reads its settings when the first kernel library pulls it in
        os.environ.setdefault("GOMP_SPINCOUNT", str(config.omp_spin_count))
        with self._lock:
            # the dynamic loader returns the handle it already has for a path it opened before
            fresh = str(path) in self._stale_paths
        try:
            lib = _open_library(path, fresh)
        except OSError as e:
            return None, f"cannot be loaded ({e})"
        try:
            stored = (ctypes.c_char * (len(key) + 1)).in_dll(lib, ENTRY_KEY_SYMBOL).value
        except ValueError:
            stored = None
        problem = None
        if stored != key.encode():
            problem = "is not the library built for its key" if stored else f"lacks the symbol {ENTRY_KEY_SYMBOL}"
        elif not hasattr(lib, name):
            problem = f"lacks the kernel function {name}"
        if problem is not None:
            if not fresh:
                with self._lock:
                    self._stale_paths.add(str(path))
            return None, problem
        fn = getattr(lib, name)
        fn.argtypes = [ctypes.c_void_p]
        fn.restype = None
        fn._lib = lib  # keep the library loaded as long as the function lives
        return fn, None


def bind_to_key(source: str, key: str) -> str:
    """The text compiled for a cache entry: the kernel source plus a symbol holding the entry's key,
    which the loader checks so that a library copied into another entry's place is never run."""
    return (f"{source}\n__attribute__((used, visibility(\"default\")))\n"
            f"const char {ENTRY_KEY_SYMBOL}[] = \"{key}\";\n")


def _open_library(path: Path, fresh: bool):
    """dlopen ``path``; with ``fresh``, through a new name (see :func:`fresh_alias`). The library
    is dlclosed when the returned object (which every function taken from it keeps alive) is
    garbage."""
    if not fresh:
        lib = ctypes.CDLL(str(path))
    else:
        with fresh_alias(path) as alias:
            lib = ctypes.CDLL(str(alias))
    weakref.finalize(lib, _dlclose, lib._handle)
    return lib


def _dlclose(handle: int) -> None:
    import _ctypes
    _ctypes.dlclose(handle)


compiler = CPUCompiler()


def pointer_array(arrays: Sequence[np.ndarray]):
    """A C array of the arrays' data pointers, as the kernels take them."""
    return (ctypes.c_void_p * len(arrays))(*[a.__array_interface__["data"][0] for a in arrays])


class PointerTable:
    """A kernel's pointer array kept between runs: only the entries whose array changed since
    the last run are rewritten (an optimizer step passes the same parameter and state buffers
    every time, and new gradients only)."""

    def __init__(self, n: int):
        self.ptrs = (ctypes.c_void_p * n)()
        self.last: List[object] = [None] * n

    def update(self, arrays: Sequence[np.ndarray]):
        ptrs, last = self.ptrs, self.last
        for i, a in enumerate(arrays):
            if a is not last[i]:
                ptrs[i] = a.__array_interface__["data"][0]
                last[i] = a
        return ptrs
