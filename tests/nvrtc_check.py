"""Compile CUDA source with NVRTC for sm_90 in tests, without a GPU (test-only helper).

NVRTC only needs its library (CuPy's binding of it), not a device, so generated kernels are
checked for errors on any machine that has it; elsewhere the calling test is skipped with the
reason.
"""
from __future__ import annotations

import pytest

from audiograd.devices.cuda.device import NVRTC_OPTIONS


def compile_sm90(source: str, name: str = "kernel.cu") -> bytes:
    """The cubin of ``source``; the test fails with NVRTC's log if it does not compile."""
    try:
        from cupy_backends.cuda.libs import nvrtc
        nvrtc.getVersion()
    except Exception as e:  # no CuPy, or no NVRTC library
        pytest.skip(f"NVRTC is not available here ({type(e).__name__}: {e})")
    prog = nvrtc.createProgram(source, name, (), ())
    try:
        try:
            nvrtc.compileProgram(prog, list(NVRTC_OPTIONS) + ["--gpu-architecture=sm_90"])
        except Exception as e:
            pytest.fail(f"NVRTC rejected {name}: {e}\n{nvrtc.getProgramLog(prog)}\n{source}")
        return nvrtc.getCUBIN(prog)
    finally:
        nvrtc.destroyProgram(prog)
