"""Settings for compiling and running kernels, in one explicit object.

Environment variables only provide the defaults (read once at import); code changes
``audiograd.config`` fields directly, e.g. ``audiograd.config.debug = 2``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Tuple


def default_cache_dir() -> Path:
    """AUDIOGRAD_CACHE_DIR, else $XDG_CACHE_HOME/audiograd, else ~/.cache/audiograd."""
    if os.environ.get("AUDIOGRAD_CACHE_DIR"):
        return Path(os.environ["AUDIOGRAD_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "audiograd"


@dataclass
class Config:
    cache_dir: Path = field(default_factory=default_cache_dir)
    # C compiler: a name or path; None searches $CC, then gcc, clang, cc on PATH
    cc: Optional[str] = None
    cflags: Tuple[str, ...] = ("-O3", "-march=native", "-fopenmp", "-fno-math-errno",
                               "-fno-trapping-math", "-fPIC", "-shared")
    num_threads: int = field(default_factory=lambda: int(os.environ.get("AUDIOGRAD_THREADS", 0)) or os.cpu_count() or 1)
    # how long (libgomp's GOMP_SPINCOUNT, in spin iterations) the kernels' OpenMP threads spin
    # for the next kernel before they sleep. libgomp's default (300000) starves numpy's BLAS
    # threads when the two alternate (bench/threads.py). Read once, when the first kernel
    # loads; an explicit GOMP_SPINCOUNT in the environment wins.
    omp_spin_count: int = 3000
    # CPU kernel libraries kept loaded while no program holds them (each costs a few of the
    # process's ~65,000 memory mappings; others are reloaded from the disk cache when needed)
    loaded_kernels: int = 4000
    # idle bytes the buffer pool may keep for reuse (reused memory skips page faults, but
    # counts in the resident size)
    buffer_pool_bytes: int = 256 << 20
    # where tensors made from data (and values made of constants alone) live when no device
    # is named (None: the host); set it with audiograd.set_default_device
    default_device: Optional[str] = None
    # GPU contractions (matmul, convolution): "fp32" exact (the default); "tf32" runs them on
    # tensor cores with fp32 inputs, outputs and accumulation, the inputs rounded to 10-bit
    # mantissas (relative error about 1e-3 per product); "bf16" asks cuBLAS for its bf16 fast
    # mode, which may round to 7 bits (on H100/H200 it chose the same kernels as tf32), and
    # runs convolutions on the TF32 kernel
    cuda_matmul_precision: str = "fp32"
    # 0 silent; 1 prints each compile and each kernel's time; 2 also prints kernel sources
    debug: int = field(default_factory=lambda: int(os.environ.get("AUDIOGRAD_DEBUG", "0") or 0))


config = Config()
