"""Element-wise CUDA kernels: 32-bit indices where every index fits, four neighbouring float
outputs per thread (one float4 store) where the innermost loop allows.

The rendering tests run anywhere (and compile with NVRTC where it is present); tests marked
``gpu`` compare GPU results with the CPU's (``pytest --gpu``).
"""
import numpy as np
import pytest

import audiograd as ag
import audiograd.nn.functional as F
from audiograd.devices.cuda.renderer import render_cuda
from audiograd.schedule.fuse import KernelStep, create_schedule
from nvrtc_check import compile_sm90

gpu = pytest.mark.gpu


def _kernel(t):
    (name, src, launch), = [render_cuda(st.kernel) for st in create_schedule([t.node]) if isinstance(st, KernelStep)]
    return src, launch


def _snake_pad(shape, dtype=np.float32, pad=(3, 5)):
    x = ag.tensor(np.zeros(shape, dtype))
    a = ag.tensor(np.ones(shape[:2] + (1,), dtype))
    return F.pad(x + (x * a).sin() ** 2 / a, pad).contiguous()


def test_float_rows_store_four_outputs_per_thread():
    src, launch = _kernel(_snake_pad((1, 8, 1000)))      # rows of 1008: a multiple of 4
    assert "for (unsigned g = " in src and "< 2016u;" in src
    assert "*(float4*)(b0 + " in src and "long long" not in src.split("__global__")[1]
    compile_sm90(src)


@pytest.mark.parametrize("shape,dtype", [((1, 8, 1001), np.float32), ((1, 8, 1000), np.float64)])
def test_odd_rows_and_doubles_store_one_output_per_thread(shape, dtype):
    src, _ = _kernel(_snake_pad(shape, dtype))              # rows of 1009 floats, or doubles
    assert "for (unsigned g = " in src and "float4" not in src.split("__global__")[1]
    compile_sm90(src)


def test_indices_beyond_32_bits_stay_64_bit():
    x = ag.tensor(np.zeros(4, np.float32))
    src, _ = _kernel(x.reshape(1, 4).expand(1 << 29, 4) + 1.0)   # 2^31 outputs
    body = src.split("__global__")[1]
    assert "for (long long g = " in body and "unsigned g" not in body
    compile_sm90(src)


@gpu
@pytest.mark.parametrize("length", [1000, 1001, 1003])
def test_padded_flipped_and_strided_element_wise_match_the_cpu(length):
    rng = np.random.default_rng(length)
    x = rng.standard_normal((2, 6, length)).astype(np.float32)
    a = rng.random((1, 6, 1)).astype(np.float32) + 0.5

    def fn(xv, av):
        y = F.pad(xv + (xv * av).sin() ** 2 / av, (3, 5))
        return y.flip(2)[..., 1::2] * 2.0 + y[..., 1::2]

    ref = fn(ag.tensor(x), ag.tensor(a)).numpy()
    got = fn(ag.tensor(x, device="cuda"), ag.tensor(a, device="cuda")).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
