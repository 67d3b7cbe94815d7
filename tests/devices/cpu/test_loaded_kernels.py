"""Kernel libraries are unloaded once no program uses them and they fall out of the in-memory
cache: a long process (a test suite, a training run) must not run out of memory mappings."""
import gc

import numpy as np
import pytest

import audiograd as ag
from audiograd.config import config

pytestmark = pytest.mark.cpu_only


def _mapped_kernels() -> int:
    cache = str(config.cache_dir)
    with open("/proc/self/maps") as f:
        return len({line.split()[-1] for line in f if cache in line and line.rstrip().endswith(".so")})


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/maps"), reason="needs Linux's /proc")
def test_unused_kernels_are_unloaded(monkeypatch):
    monkeypatch.setattr(config, "loaded_kernels", 5)
    x = np.arange(7, dtype=np.float32)
    gc.collect()
    before = _mapped_kernels()
    for i in range(40):  # each constant makes a kernel of its own
        np.testing.assert_allclose((ag.tensor(x) * (1.0 + i / 1000)).numpy(), x * np.float32(1.0 + i / 1000), rtol=1e-6)
    gc.collect()
    assert _mapped_kernels() <= before + 5 + 2
    # an unloaded kernel is loaded again from the disk cache and still computes
    np.testing.assert_allclose((ag.tensor(x) * 1.0).numpy(), x)
