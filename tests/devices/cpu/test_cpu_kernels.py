"""The CPU runtime's process-wide settings."""
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.cpu_only  # the C kernels' OpenMP runtime


def test_openmp_spin_count_is_set_before_the_first_kernel_loads():
    """libgomp reads GOMP_SPINCOUNT when a kernel library first pulls it in; a fresh process
    shows what the kernels run with (an explicit setting in the environment wins)."""
    code = ("import os, audiograd as ag; (ag.tensor([1.0, 2.0]) * 2).numpy(); "
            "print(os.environ.get('GOMP_SPINCOUNT'), ag.config.omp_spin_count)")
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    got, want = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                               check=True).stdout.split()
    assert got == want
    env["GOMP_SPINCOUNT"] = "123"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split()[0] == "123"
