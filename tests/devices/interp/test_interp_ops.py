"""Single ops on the interpreter device, each compared with the same program on the CPU.

Integer and bool results must match exactly. Float results: rtol 1e-5 (float32) or 1e-12
(float64), with atol the same times the largest |value| of the CPU result (sums, products,
convolutions and FFTs are compared relative to their scale: the two devices accumulate in
different orders). Each device runs with itself as the default device, as under
``pytest --device``.
"""

import numpy as np
import pytest

import audiograd as ag
import audiograd.nn.functional as F
from audiograd.dsp import irfft_frames, rfft_frames, stft
from audiograd.tensor import pad

RNG = np.random.default_rng(0)
RTOL = {np.float32: 1e-5, np.float64: 1e-12}


def randn(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def assert_agree(mine: np.ndarray, cpu: np.ndarray, what=""):
    assert mine.dtype == cpu.dtype and mine.shape == cpu.shape, (what, mine.dtype, cpu.dtype, mine.shape, cpu.shape)
    if mine.dtype.kind in "biu":
        np.testing.assert_array_equal(mine, cpu, err_msg=what)
        return
    rtol = RTOL[mine.dtype.type]
    finite = cpu[np.isfinite(cpu)]
    scale = max(1.0, float(np.max(np.abs(finite), initial=0)))
    np.testing.assert_allclose(mine, cpu, rtol=rtol, atol=rtol * scale, err_msg=what)



def run(device, fn, arrays):
    with ag.using_device(device):
        return fn(*[ag.tensor(a, device=device) for a in arrays])


def both(fn, *arrays):
    """Run ``fn`` on CPU tensors and on interpreter tensors made from ``arrays``; compare."""
    ref, out = run("cpu", fn, arrays), run("interp", fn, arrays)
    refs, outs = (ref, out) if isinstance(ref, tuple) else ((ref,), (out,))
    for i, (r, o) in enumerate(zip(refs, outs)):
        assert o.device == "interp" and r.device == "cpu"
        assert_agree(o.numpy(), r.numpy(), f"result {i}")


def both_grads(fn, *arrays):
    """Compare ``fn``'s value and the gradients of its scalar result on both devices."""
    grads = {}
    for device in ("cpu", "interp"):
        with ag.using_device(device):
            ts = [ag.tensor(a, device=device, requires_grad=True) for a in arrays]
            out = fn(*ts)
            out.backward()
            assert all(t.grad.device == device for t in ts)
            grads[device] = [out.numpy()] + [t.grad.numpy() for t in ts]
    for i, (mine, cpu) in enumerate(zip(grads["interp"], grads["cpu"])):
        assert_agree(mine, cpu, "value" if i == 0 else f"gradient {i - 1}")


# ---- element-wise ---------------------------------------------------------------------------
UNARY = {
    "neg": lambda x: -x, "exp": lambda x: x.exp(), "log": lambda x: (x.abs() + 1).log(),
    "log1p": lambda x: x.abs().log1p(), "sin": lambda x: x.sin(), "cos": lambda x: x.cos(),
    "sqrt": lambda x: x.abs().sqrt(), "tanh": lambda x: x.tanh(), "sigmoid": lambda x: x.sigmoid(),
    "erf": lambda x: (x * 2).erf(), "abs": lambda x: x.abs(), "sign": lambda x: x.sign(), "relu": lambda x: x.relu(),
    "softplus": lambda x: x.softplus(), "clamp": lambda x: x.clamp(-0.5, 0.5),
    "reciprocal": lambda x: (x.abs() + 0.5).reciprocal(), "pow": lambda x: x.abs() ** 1.7,
    "gelu": lambda x: F.gelu(x), "silu": lambda x: F.silu(x),
}
BINARY = {
    "add": lambda x, y: x + y, "sub": lambda x, y: x - 2 * y, "mul": lambda x, y: x * y,
    "div": lambda x, y: x / (y.abs() + 1), "maximum": lambda x, y: x.maximum(y),
    "minimum": lambda x, y: x.minimum(y), "atan2": lambda x, y: x.atan2(y), "where": lambda x, y: ag.where(x > y, x, y),
    "compare": lambda x, y: (x < y).float() + (x >= y).float() * 3,
    "logic": lambda x, y: ((x > 0) & (y > 0)) | ~(x < -1), "pow": lambda x, y: (x.abs() + 0.1) ** y,
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary(name, dtype):
    both(UNARY[name], randn(7, 33, dtype=dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary(name, dtype):
    both(BINARY[name], randn(7, 33, dtype=dtype), randn(33, dtype=dtype))


SPECIAL = np.array([0.0, -0.0, 1.5, -1.5, np.inf, -np.inf, np.nan, 1e-30, -3.0], np.float32)


@pytest.mark.parametrize("fn", [lambda x, y: x.maximum(y), lambda x, y: x.minimum(y), lambda x, y: x.sign() + y,
                                lambda x, y: x.abs() * y.sign(), lambda x, y: ag.where(x > 0, x, y), lambda x, y: x / y,
                                lambda x, y: (x == y) | (x != x), lambda x, y: x.relu() - y.clamp(-1, 1)],
                         ids=["maximum", "minimum", "sign", "abs", "where", "div", "compare", "relu_clamp"])
def test_special_values(fn):
    """inf, NaN and signed zeros, against every other special value."""
    x, y = np.meshgrid(SPECIAL, SPECIAL)
    both(fn, x, y)


INTEGER = {
    "arith": lambda x, y: x * 3 + y - x.abs(),
    "truncating_cast": lambda x, y: (x.float() / y).to(ag.int32),
    "sign_clamp": lambda x, y: x.sign() * y.clamp(2, 5),
    "min_max": lambda x, y: x.maximum(y) - x.minimum(-y),
    "compare": lambda x, y: (x < y) | (x == 0),
    "bool_sum": lambda x, y: (x > y).sum(1),
    "sum": lambda x, y: x.sum(1) + y.sum(),
    "amax": lambda x, y: x.amax(0) + y.amin(1, keepdim=True),
    "argmax": lambda x, y: x.argmax(1),
    "cumsum": lambda x, y: (x > 0).int().cumsum(1) + y.cumsum(0),
    "narrowing_cast": lambda x, y: (x * 100000000).to(ag.int32),
    "float_to_int": lambda x, y: (x.float() * 0.37 - 0.5).long(),
}


@pytest.mark.parametrize("name", sorted(INTEGER))
def test_integer_and_bool_ops_exact(name):
    x = RNG.integers(-50, 50, (5, 40)).astype(np.int64)
    y = RNG.integers(1, 9, (5, 40)).astype(np.int32)
    both(INTEGER[name], x, y)


# ---- reductions and scans -------------------------------------------------------------------
REDUCE = {
    "sum_all": lambda x: x.sum(), "sum_rows": lambda x: x.sum(1), "sum_cols_keep": lambda x: x.sum(0, keepdim=True),
    "sum_two_axes": lambda x: x.reshape(4, 6, 35).sum((0, 2)), "mean": lambda x: x.mean(-1),
    "amax": lambda x: x.amax(1), "amin": lambda x: x.amin(0), "max_values": lambda x: x.max(1)[0],
    "var": lambda x: x.var(1), "softmax": lambda x: x.softmax(-1), "logsumexp": lambda x: x.logsumexp(0),
    "center": lambda x: x - x.mean(1, keepdim=True), "sum_of_transpose": lambda x: x.transpose(0, 1).sum(1),
    "cumsum_rows": lambda x: x.cumsum(1), "cumsum_cols": lambda x: x.cumsum(0),
    "cumsum_of_flip": lambda x: x.flip(1)[:, ::3].cumsum(1), "cumsum_of_exp": lambda x: x.exp().cumsum(-1),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(REDUCE))
def test_reduction(name, dtype):
    both(REDUCE[name], randn(24, 35, dtype=dtype))


def test_max_propagates_nan():
    x = randn(6, 9)
    x[1, 3] = x[4, 0] = np.nan
    x[2, :] = -np.inf
    both(lambda t: (t.amax(1), t.amax(0), t.maximum(t.flip(1)).amax()), x)
    got = ag.tensor(x, device="interp").amax(1).numpy()
    assert np.isnan(got[[1, 4]]).all() and got[2] == -np.inf and not np.isnan(got[[0, 3, 5]]).any()


LARGE = {  # big enough for the CPU's threaded, split, tiled, blocked and peeled loop nests
    "split_sum": lambda x: x.sum(), "split_max_with_nan": lambda x: ag.where(x > 3.5, float("nan"), x).amax(),
    "column_sum": lambda x: x.sum(0), "column_max": lambda x: (x.amax(0, keepdim=True) * 2).exp(),
    "row_sum": lambda x: x.sum(1), "transpose_copy": lambda x: x.T.contiguous() + 0,
    "peeled_pad": lambda x: pad(x, (5, 7, 3, 2), value=1.5) * 2, "cumsum": lambda x: x.cumsum(0),
    "int_column_sum": lambda x: (x * 1000).int().sum(0),
}


@pytest.mark.parametrize("name", sorted(LARGE))
def test_large_kernels(name):
    both(LARGE[name], randn(300, 217))


# ---- movement ----------------------------------------------------------------------------------
MOVEMENT = {
    "pad_constant": lambda x: pad(x, (2, 3, 1, 0), value=1.5), "pad_reflect": lambda x: pad(x, (3, 2), mode="reflect"),
    "pad_replicate": lambda x: pad(x, (1, 4, 2, 2), mode="replicate"),
    "pad_circular": lambda x: pad(x, (2, 3), mode="circular"), "flip": lambda x: x.flip((0, 1)),
    "steps": lambda x: x[::2, 1::3], "negative_steps": lambda x: x[::-2, ::-3], "slice": lambda x: x[1:-1, 2:9:2],
    "index": lambda x: x[3], "permute_reshape": lambda x: x.reshape(2, 3, 2, 11).permute(2, 0, 3, 1).reshape(12, 11),
    "expand": lambda x: x[:, :1].expand(12, 5) * x[:1, :5], "cat": lambda x: ag.cat([x, x.flip(0) * 2], 1),
    "stack": lambda x: ag.stack([x, -x], 0), "unfold": lambda x: x.unfold(1, 4, 3),
    "pad_of_exp_sliced": lambda x: pad(x.exp(), (2, 2))[:, ::-3] + 1,
    "pad_then_reduce": lambda x: pad(x, (0, 5), value=-2.0).amax(1),
}


@pytest.mark.parametrize("name", sorted(MOVEMENT))
def test_movement(name):
    both(MOVEMENT[name], randn(12, 11))


# ---- products, convolutions, FFTs ------------------------------------------------------------------
MATMUL = {
    "2d": ((5, 7), (7, 3), lambda a, b: a @ b), "batched": ((4, 5, 7), (7, 6), lambda a, b: a @ b),
    "broadcast": ((2, 1, 5, 7), (3, 7, 4), lambda a, b: a @ b), "transposed": ((5, 7), (3, 7), lambda a, b: a @ b.T),
    "vec_vec": ((7,), (7,), lambda a, b: a @ b), "vec_mat": ((7,), (7, 4), lambda a, b: a @ b),
    "of_views": ((9, 7), (7, 8), lambda a, b: a[::2].exp() @ b[:, 1::2]),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(MATMUL))
def test_matmul(name, dtype):
    sa, sb, fn = MATMUL[name]
    both(fn, randn(*sa, dtype=dtype), randn(*sb, dtype=dtype))


CONV = {  # (cin, cout, k, kwargs): enough taps per output for the conv_rows op, and small ones too
    "rows": (8, 6, 5, {}), "rows_bias_pad": (8, 6, 5, dict(padding=2, bias=True)),
    "rows_stride_dilation": (6, 4, 7, dict(stride=3, dilation=2, padding=3)),
    "rows_groups": (8, 4, 9, dict(groups=2, padding="same", bias=True)),
    "direct_depthwise": (4, 4, 3, dict(groups=4, padding=1)), "direct_small": (2, 3, 3, dict(bias=True)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(CONV))
def test_conv1d(name, dtype):
    cin, cout, k, kw = CONV[name]
    kw = dict(kw)
    groups = kw.get("groups", 1)
    arrays = [randn(2, cin, 50, dtype=dtype), randn(cout, cin // groups, k, dtype=dtype)]
    if kw.pop("bias", False):
        arrays.append(randn(cout, dtype=dtype))
    both(lambda x, w, *b: F.conv1d(x, w, *b, **kw), *arrays)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_transpose1d(dtype):
    x, w, b = randn(2, 6, 20, dtype=dtype), randn(6, 4, 7, dtype=dtype), randn(4, dtype=dtype)
    both(lambda x, w, b: F.conv_transpose1d(x, w, b, stride=3, padding=2), x, w, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rfft_and_inverse(dtype):
    x = randn(3, 32, 9, dtype=dtype)
    both(lambda t: (rfft_frames(t), irfft_frames(rfft_frames(t), 32)), x)
    got = ag.tensor(x, device="interp")
    spec = np.fft.rfft(x.astype(np.float64), axis=-2)
    np.testing.assert_allclose(rfft_frames(got).numpy(), np.stack([spec.real, spec.imag], -3),
                               rtol=RTOL[dtype], atol=RTOL[dtype] * 30)
    np.testing.assert_allclose(irfft_frames(rfft_frames(got), 32).numpy(), x, rtol=RTOL[dtype], atol=RTOL[dtype] * 30)


@pytest.mark.parametrize("n_fft", [16, 12])
def test_stft(n_fft):
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)
    both(lambda x: stft(x, n_fft, hop_length=4, window=window), randn(2, 100))


# ---- gradients ----------------------------------------------------------------------------------
GRADS = {
    "conv1d_rows": ([(2, 8, 40), (6, 8, 5), (6,)], lambda x, w, b: F.conv1d(x, w, b, padding=2).tanh().square().sum()),
    "conv1d_strided": ([(2, 6, 40), (4, 6, 7)], lambda x, w: (F.conv1d(x, w, stride=2, dilation=2) ** 2).mean()),
    "conv_transpose1d": ([(2, 6, 20), (6, 4, 7)], lambda x, w: F.conv_transpose1d(x, w, stride=3).sin().sum()),
    "rfft": ([(2, 16, 7)], lambda x: (rfft_frames(x * 1.5) ** 2).sum()),
    "stft": ([(1, 64)], lambda x: sum(p.square().sum() for p in stft(x, 16, hop_length=4))),
    "matmul": ([(5, 7), (7, 3)], lambda a, b: (a @ b).softmax(-1)[:, 0].sum()),
    "amax": ([(6, 9)], lambda x: x.amax(1).sum() + x.amax()),
    "cumsum": ([(6, 9)], lambda x: (x.cumsum(1) * x.flip(1)).sum()),
    "movement": ([(6, 9)], lambda x: (pad(x[::2, ::-3], (2, 1), mode="reflect") * 3).exp().sum()),
    "norm": ([(4, 10)], lambda x: F.layer_norm(x, (10,)).sigmoid().sum()),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(GRADS))
def test_gradients(name, dtype):
    shapes, fn = GRADS[name]
    both_grads(fn, *[randn(*s, dtype=dtype) for s in shapes])
