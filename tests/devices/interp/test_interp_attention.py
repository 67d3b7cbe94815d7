"""The interpreter's attention (numpy) against the CPU's fused kernel: values and gradients,
with no mask, a T5-style bias shared over the batch, a key-padding mask and a fully masked
query. Tolerances: rtol 1e-12 (float64) and 1e-5 (float32), relative to the largest value."""
import numpy as np
import pytest

import audiograd as ag
from audiograd.nn.functional import scaled_dot_product_attention as sdpa

RTOL = {np.float32: 1e-5, np.float64: 1e-12}


def _run(device, arrays, mask):
    with ag.using_device(device):
        ins = [ag.tensor(a, device=device, requires_grad=True) for a in arrays]
        m = None if mask is None else ag.tensor(mask, device=device)
        out = sdpa(*ins, attn_mask=m)
        (out * out).sum().backward()
        return [out.numpy()] + [t.grad.numpy() for t in ins]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mask_kind", [None, "bias", "padding"])
def test_interp_attention_matches_cpu(dtype, mask_kind):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(dtype) for s in ((2, 3, 19, 8), (2, 3, 23, 8), (2, 3, 23, 5))]
    mask = None
    if mask_kind == "bias":
        mask = rng.standard_normal((1, 3, 19, 23)).astype(dtype)
    elif mask_kind == "padding":
        mask = rng.random((2, 1, 1, 23)) > 0.4
        mask[0] = False   # every query of batch 0 fully masked: zeros
    mine, cpu = _run("interp", arrays, mask), _run("cpu", arrays, mask)
    for what, a, b in zip(("output", "dq", "dk", "dv"), mine, cpu):
        scale = max(1.0, float(np.abs(b).max()))
        np.testing.assert_allclose(a, b, rtol=RTOL[dtype], atol=RTOL[dtype] * scale, err_msg=what)
    if mask_kind == "padding":
        assert np.all(mine[0][0] == 0)
