"""A caching allocator for kernel outputs.

Fresh memory is expensive here: the kernel zero-fills every new page on first touch (on
virtual machines this can cost more than the kernel that writes the buffer). Buffers freed by
Python go back to a pool, keyed by their rounded size, and the next request that fits
(best fit, at most 25% larger) reuses them, like PyTorch's CUDA caching allocator. The pool keeps at most
``config.buffer_pool_bytes`` of idle blocks, dropping the oldest first.

Every buffer starts on a cache line (numpy's large blocks start 16 bytes past a page): a
vector load or store that straddles two lines costs a fifth of the bandwidth of a streaming
kernel.
"""
from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import List, Optional

import numpy as np

from ...config import config

# blocks below this size come straight from numpy (its own small-block cache is fast)
MIN_POOLED = 1 << 16
GRAIN = 1 << 16
ALIGN = 64


def _aligned_view(block: np.ndarray, nbytes: int, shape, dtype) -> np.ndarray:
    off = -block.ctypes.data % ALIGN
    return block[off:off + nbytes].view(dtype).reshape(shape)


def aligned_empty(shape, dtype) -> np.ndarray:
    """An uninitialized C-contiguous array starting on a cache line, owned by its own block
    (views of it keep the memory alive; nothing returns it to the pool)."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    return _aligned_view(np.empty(nbytes + ALIGN, np.uint8), nbytes, shape, dtype)


class BufferPool:
    def __init__(self, limit: Optional[int] = None):
        self._limit = limit
        self._free: "OrderedDict[int, List[np.ndarray]]" = OrderedDict()
        self._idle = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @property
    def limit(self) -> int:
        return config.buffer_pool_bytes if self._limit is None else self._limit

    @limit.setter
    def limit(self, value: int) -> None:
        self._limit = value

    def empty(self, shape, dtype) -> np.ndarray:
        """An uninitialized C-contiguous array, reusing an idle block when one fits."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if nbytes < MIN_POOLED:
            return aligned_empty(shape, dtype)
        size = -(-nbytes // GRAIN) * GRAIN + ALIGN
        with self._lock:
            # best fit among idle blocks up to 25% larger than asked for
            fit = min((s for s in self._free if size <= s <= size + size // 4), default=None)
            block = None
            if fit is not None:
                block = self._free[fit].pop()
                if not self._free[fit]:
                    del self._free[fit]
                self._idle -= fit
                self.hits += 1
            else:
                self.misses += 1
        if block is None:
            block = np.empty(size, np.uint8)
        arr = _aligned_view(block, nbytes, shape, dtype)
        weakref.finalize(arr, self._release, block)
        return arr

    def _release(self, block: np.ndarray) -> None:
        size = block.nbytes
        with self._lock:
            self._free.setdefault(size, []).append(block)
            self._free.move_to_end(size)
            self._idle += size
            limit = self.limit
            while self._idle > limit and self._free:  # drop the least recently freed sizes
                old_size, old = next(iter(self._free.items()))
                old.pop(0)
                self._idle -= old_size
                if not old:
                    del self._free[old_size]

    def clear(self) -> None:
        """Return every idle block to the system."""
        with self._lock:
            self._free.clear()
            self._idle = 0

    @property
    def idle_bytes(self) -> int:
        return self._idle


pool = BufferPool()
