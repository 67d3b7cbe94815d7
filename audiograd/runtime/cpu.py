"""The CPU device: compile C kernels through the disk cache, load them, call them."""
from __future__ import annotations

import ctypes
import hashlib
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..config import config
from .compiler import compile_shared, compiler_identity, find_compiler
from .disk_cache import DiskCache

# bump when generated code changes meaning without changing its text
CODEGEN_VERSION = "1"


def _load_libmvec() -> bool:
    """glibc's vector math library lets gcc vectorize sin/exp/log; load it for every kernel."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        ctypes.CDLL("libmvec.so.1", mode=ctypes.RTLD_GLOBAL)
        return True
    except OSError:
        return False


HAS_MVEC = _load_libmvec()


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


class Stats:
    """Counters for tests and debugging: compiles run, kernels loaded from disk, memory hits."""

    def __init__(self):
        self.compiled = self.loaded = self.memory_hits = 0

    def __repr__(self):
        return f"Stats(compiled={self.compiled}, loaded={self.loaded}, memory_hits={self.memory_hits})"


stats = Stats()


class CPUCompiler:
    def __init__(self):
        self._fns: Dict[str, object] = {}
        self._sig = _cpu_signature()

    def _flags(self) -> Tuple[str, ...]:
        return tuple(config.cflags) + (("-DAG_MVEC",) if HAS_MVEC else ())

    def key(self, source: str, cc_id: str) -> str:
        h = hashlib.sha256()
        for part in (CODEGEN_VERSION, cc_id, " ".join(self._flags()), self._sig, source):
            h.update(part.encode())
            h.update(b"\0")
        return h.hexdigest()

    def get_many(self, kernels: Sequence[Tuple[str, str]]) -> List[object]:
        """Callable functions for (name, source) pairs, compiling the missing ones in parallel."""
        cache = DiskCache(config.cache_dir)
        cc = None
        cc_id = None
        out: List[object] = [None] * len(kernels)
        todo = []
        for i, (name, src) in enumerate(kernels):
            memo = (name, src)
            fn = self._fns.get(memo)
            if fn is not None:
                stats.memory_hits += 1
                out[i] = fn
                continue
            todo.append(i)
        if not todo:
            return out
        cc = config.cc
        from .compiler import find_compiler as _find
        cc_path = _find(cc)
        cc_id = compiler_identity(cc_path)
        flags = self._flags()
        keys = {i: self.key(kernels[i][1], cc_id) for i in todo}
        missing = [i for i in todo if cache.lookup(keys[i]) is None]

        def build(i):
            t0 = time.perf_counter()
            path = cache.build(keys[i], kernels[i][1], lambda s, o: compile_shared(cc_path, flags, s, o))
            if config.debug:
                print(f"[audiograd] compiled {kernels[i][0]} in {1e3*(time.perf_counter()-t0):.0f} ms "
                      f"({cache.source_path(keys[i])})", file=sys.stderr)
            return path

        if missing:
            stats.compiled += len(missing)
            workers = max(1, min(len(missing), config.num_threads))
            if workers == 1:
                for i in missing:
                    build(i)
            else:
                with ThreadPoolExecutor(workers) as ex:
                    list(ex.map(build, missing))
        for i in todo:
            name, src = kernels[i]
            path = cache.lookup(keys[i]) or cache.build(keys[i], src, lambda s, o: compile_shared(cc_path, flags, s, o))
            if i not in missing:
                stats.loaded += 1
            try:
                fn = self._load(path, name)
            except OSError:  # unreadable library: rebuild it once
                path.unlink(missing_ok=True)
                path = cache.build(keys[i], src, lambda s, o: compile_shared(cc_path, flags, s, o))
                fn = self._load(path, name)
            if config.debug >= 2:
                print(f"[audiograd] kernel {name}:\n{src}", file=sys.stderr)
            self._fns[(name, src)] = fn
            out[i] = fn
        return out

    @staticmethod
    def _load(path: Path, name: str):
        lib = ctypes.CDLL(str(path))
        fn = getattr(lib, name)
        fn.argtypes = [ctypes.c_void_p]
        fn.restype = None
        fn._lib = lib  # keep the library loaded as long as the function lives
        return fn


compiler = CPUCompiler()


def pointer_array(arrays: Sequence[np.ndarray]):
    """A C array of the arrays' data pointers, as the kernels take them."""
    return (ctypes.c_void_p * len(arrays))(*[a.__array_interface__["data"][0] for a in arrays])
