"""The blocked convolution kernel, with AVX-512 vectors where the CPU has them and with the
AVX2 fallback forced, against PyTorch."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import audiograd as ag
import audiograd.nn.functional as F

CASES = [  # (length, kernel, stride, padding, dilation, groups): odd/even lengths, partial blocks
    (1, 3, 1, 1, 1, 1), (23, 7, 1, 3, 1, 1), (70, 4, 2, 1, 1, 2), (70, 7, 1, 9, 3, 1),
    (23, 3, 3, 5, 1, 3), (70, 5, 2, 4, 2, 2), (33, 1, 1, 0, 1, 1), (70, 16, 8, 4, 1, 1),
]


@pytest.fixture(params=["native", "avx2"])
def vector_width(request):
    saved = ag.config.cflags
    if request.param == "avx2":
        ag.config.cflags = saved + ("-mno-avx512f",)
    yield request.param
    ag.config.cflags = saved


@pytest.mark.parametrize("length,k,stride,padding,dilation,groups", CASES)
def test_conv1d_blocked_kernel(vector_width, length, k, stride, padding, dilation, groups):
    rng = np.random.default_rng(length * 31 + k)
    cout = 14 if groups <= 2 else 12
    arrays = [rng.standard_normal((2, 12, length)).astype(np.float32),
              rng.standard_normal((cout, 12 // groups, k)).astype(np.float32),
              rng.standard_normal(cout).astype(np.float32)]
    ours = [ag.tensor(a, requires_grad=True) for a in arrays]
    ref = [torch.tensor(a, requires_grad=True) for a in arrays]
    y = F.conv1d(*ours, stride, padding, dilation, groups)
    yt = TF.conv1d(*ref, stride, padding, dilation, groups)
    g = rng.standard_normal(yt.shape).astype(np.float32)
    (y * ag.tensor(g)).sum().backward()
    (yt * torch.tensor(g)).sum().backward()
    scale = np.abs(yt.detach().numpy()).max()
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-5, atol=1e-5 * scale)
    for a, t in zip(ours, ref):
        gs = np.abs(t.grad.numpy()).max()
        np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-5 * gs)


def test_conv_transpose1d_blocked_kernel(vector_width):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 16, 9)).astype(np.float32)
    w = rng.standard_normal((16, 6, 8)).astype(np.float32)
    y = F.conv_transpose1d(ag.tensor(x), ag.tensor(w), stride=4, padding=2).numpy()
    yt = TF.conv_transpose1d(torch.tensor(x), torch.tensor(w), stride=4, padding=2).numpy()
    np.testing.assert_allclose(y, yt, rtol=1e-5, atol=1e-5 * np.abs(yt).max())
