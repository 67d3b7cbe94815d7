"""Float64 central finite-difference checks of every differentiable op's gradient.

Each case is ``f(*tensors) -> tensor``; the checked scalar is ``sum(f(x) * w)`` with fixed random
weights ``w`` (every output element counts with its own weight, so e.g. softmax, whose plain sum is
constant, still gets a real check). Numeric gradients use eps = 1e-6 and are compared with
rtol 1e-6, atol 1e-8: the truncation error is ~eps^2 * |f'''| ~ 1e-12 and the rounding error
~ ulp(loss) / eps ~ 1e-10 * |loss|, with losses of order 1-10 here. Inputs stay away from kinks
(abs and relu at 0, ties of max/maximum, clamp bounds, softplus threshold) by at least 0.05.
"""
from __future__ import annotations

import numpy as np
import pytest

import audiograd as ag
from audiograd.tensor import pad

EPS, RTOL, ATOL = 1e-6, 1e-6, 1e-8


def numeric_grad(f, inputs, eps=EPS):
    """Central differences of the scalar ``f(*tensors)`` with respect to each array in ``inputs``."""
    xs = [np.array(x, dtype=np.float64) for x in inputs]

    def value():
        return float(f(*[ag.tensor(x.copy()) for x in xs]).item())

    grads = []
    with ag.no_grad():
        for x in xs:
            g = np.zeros_like(x)
            flat, gflat = x.reshape(-1), g.reshape(-1)  # views: writing flat perturbs x
            for i in range(flat.size):
                old = flat[i]
                flat[i] = old + eps
                hi = value()
                flat[i] = old - eps
                lo = value()
                flat[i] = old
                gflat[i] = (hi - lo) / (2 * eps)
            grads.append(g)
    return grads


def check_grad(f, *inputs, rtol=RTOL, atol=ATOL):
    tensors = [ag.tensor(np.array(x, dtype=np.float64), requires_grad=True) for x in inputs]
    out = f(*tensors)
    w = np.random.default_rng(7).uniform(-1.5, 1.5, out.shape)
    (out * ag.tensor(w)).sum().backward()
    numeric = numeric_grad(lambda *ts: (f(*ts) * ag.tensor(w)).sum(), inputs)
    for k, (t, n) in enumerate(zip(tensors, numeric)):
        assert t.grad is not None, f"input {k} got no gradient"
        assert t.grad.shape == t.shape
        np.testing.assert_allclose(t.grad.numpy(), n, rtol=rtol, atol=atol, err_msg=f"gradient of input {k}")


# ---- inputs away from kinks ----------------------------------------------------------------------
_rng = np.random.default_rng(0)


def normal(*shape):
    return _rng.standard_normal(shape)


def positive(*shape, lo=0.5, hi=2.0):
    return _rng.uniform(lo, hi, shape)


def away_from_zero(*shape, gap=0.2):
    """|x| >= gap: clear of the kinks of abs, relu and sign."""
    return _rng.choice([-1.0, 1.0], shape) * _rng.uniform(gap, gap + 1.5, shape)


def distinct(*shape):
    """Values at least 0.2 apart: no ties for max/amax."""
    n = int(np.prod(shape))
    return (_rng.permutation(n) * 0.3 - 0.15 * n + _rng.uniform(0, 0.1, n)).reshape(shape)


def off_bounds(*shape, bounds=(-0.5, 0.5), gap=0.05):
    """Uniform in [-2, 2] but at least ``gap`` from each of ``bounds`` (clamp's kinks)."""
    x = _rng.uniform(-2, 2, shape)
    for b in bounds:
        near = np.abs(x - b) < gap
        x[near] = b + np.where(x[near] >= b, gap, -gap) * 2
    return x


def _shifted(a, gap=0.2):
    """An array differing from ``a`` by at least ``gap`` everywhere, either side."""
    return a + away_from_zero(*a.shape, gap=gap)


a34 = normal(3, 4)
d34 = distinct(3, 4)
W423 = normal(4, 2, 3)
CASES = [
    # unary
    ("neg", lambda x: -x, [a34]),
    ("abs", lambda x: x.abs(), [away_from_zero(3, 4)]),
    ("exp", lambda x: x.exp(), [a34]),
    ("log", lambda x: x.log(), [positive(3, 4)]),
    ("log1p", lambda x: x.log1p(), [positive(3, 4, lo=-0.5, hi=2.0)]),
    ("sqrt", lambda x: x.sqrt(), [positive(3, 4)]),
    ("rsqrt", lambda x: x.rsqrt(), [positive(3, 4)]),
    ("reciprocal", lambda x: x.reciprocal(), [away_from_zero(3, 4, gap=0.5)]),
    ("sin", lambda x: x.sin(), [a34]),
    ("cos", lambda x: x.cos(), [a34]),
    ("tanh", lambda x: x.tanh(), [a34]),
    ("sigmoid", lambda x: x.sigmoid(), [a34 * 2]),
    pytest.param("relu", lambda x: x.relu(), [away_from_zero(3, 4)]),
    pytest.param("softplus", lambda x: x.softplus(), [normal(3, 4) * 3]),
    pytest.param("softplus_beta_threshold", lambda x: x.softplus(beta=2.0, threshold=5.0),
                 [np.array([[-3.0, -0.4, 0.7, 1.9], [3.1, 3.6, 4.2, 6.0]])]),
    # pow: special-cased scalar exponents, general ones, both tensor arguments, scalar base
    ("pow_2", lambda x: x ** 2, [a34]),
    ("pow_3", lambda x: x ** 3, [a34]),
    ("pow_half", lambda x: x ** 0.5, [positive(3, 4)]),
    ("pow_minus_2", lambda x: x ** -2, [positive(3, 4)]),
    ("pow_2_5", lambda x: x ** 2.5, [positive(3, 4)]),
    ("pow_both_args", lambda a, b: a ** b, [positive(3, 4), normal(3, 4)]),
    ("pow_both_broadcast", lambda a, b: a.pow(b), [positive(3, 4), normal(4)]),
    ("rpow_scalar_base", lambda x: 2.0 ** x, [a34]),
    # binary, with broadcasting and Python scalars
    ("add", lambda a, b: a + b, [a34, normal(4)]),
    ("add_scalar_alpha", lambda a, b: (a + 2.0).add(b, alpha=3.0), [a34, normal(3, 1)]),
    ("sub", lambda a, b: a - b, [a34, normal(3, 1)]),
    ("rsub_scalar", lambda x: 3.0 - x, [a34]),
    ("mul", lambda a, b: a * b, [a34, normal(2, 1, 4)]),
    ("div", lambda a, b: a / b, [a34, away_from_zero(4, gap=0.5)]),
    ("rdiv_scalar", lambda x: 2.0 / x, [away_from_zero(3, 4, gap=0.5)]),
    pytest.param("maximum", lambda a, b: a.maximum(b), [d34, _shifted(d34)]),
    ("atan2", lambda a, b: a.atan2(b), [a34, away_from_zero(3, 4, gap=0.3)]),
    ("minimum", lambda a, b: a.minimum(b), [d34, _shifted(d34)]),
    ("minimum_broadcast", lambda a, b: a.minimum(b), [d34, np.array([-1.12, 0.03, 0.51, 1.97])]),
    ("where", lambda a, b: ag.where(ag.tensor(d34 > 0), a, b), [a34, normal(4)]),
    ("where_scalar_branch", lambda a: ag.where(ag.tensor(d34 > 0), a, 0.5), [a34]),
    ("clamp", lambda x: x.clamp(-0.5, 0.5), [off_bounds(3, 4)]),
    ("clamp_min", lambda x: x.clamp(min=-0.5), [off_bounds(3, 4)]),
    ("clamp_max", lambda x: x.clamp(max=0.5), [off_bounds(3, 4)]),
    # reductions and normalizations
    ("sum_all", lambda x: x.sum(), [a34]),
    ("sum_dim", lambda x: x.sum(1), [a34]),
    ("sum_dims_keepdim", lambda x: x.sum((0, 2), keepdim=True), [normal(2, 3, 4)]),
    ("mean_all", lambda x: x.mean(), [a34]),
    ("mean_dims", lambda x: x.mean((0, -1)), [normal(2, 3, 4)]),
    ("amax_dim", lambda x: x.amax(1), [d34]),
    ("amax_all", lambda x: x.amax(), [d34]),
    ("amax_dims_keepdim", lambda x: x.amax((0, 2), keepdim=True), [distinct(2, 3, 4)]),
    ("var", lambda x: x.var(), [a34]),
    ("var_dim_biased", lambda x: x.var(0, unbiased=False, keepdim=True), [a34]),
    ("std_dim", lambda x: x.std(1), [a34]),
    ("logsumexp", lambda x: x.logsumexp(1), [a34 * 3]),
    ("softmax", lambda x: x.softmax(0), [a34 * 2]),
    ("softmax_last", lambda x: x.softmax(-1), [normal(2, 3, 4)]),
    ("log_softmax", lambda x: x.log_softmax(-1), [a34 * 2]),
    # movement
    ("reshape", lambda x: x.reshape(4, 3).sin(), [a34]),
    ("permute", lambda x: x.permute(2, 0, 1) * W423, [normal(2, 3, 4)]),
    ("expand", lambda x: x.expand(2, 3, 4), [normal(3, 1)]),
    ("slice_steps", lambda x: x[::2, ::-1], [a34]),
    ("slice_neg_steps", lambda x: x[1:, 3:0:-2], [a34]),
    ("slice_step3_int", lambda x: x[-1, :, 1::3], [normal(2, 3, 5)]),
    ("slice_newaxis_ellipsis", lambda x: x[None, ..., ::-3], [normal(2, 3, 5)]),
    ("flip", lambda x: x.flip((0, 2)), [normal(2, 3, 4)]),
    ("slice_then_log", lambda x: x[1:, ::2].log(), [positive(3, 4)]),
    ("pad_then_exp", lambda x: pad(x, (1, 1)).exp(), [a34]),
    pytest.param("overlapping_slices_log", lambda x: x[1:].log() + x[:-1], [positive(3, 4)]),
    ("overlapping_slices_exp", lambda x: x[1:].exp() * x[:-1], [a34]),
    ("pad_constant", lambda x: pad(x, (1, 2)), [a34]),
    ("pad_constant_value_crop", lambda x: pad(x, (-1, 2, 1, 0), value=1.5), [a34]),
    ("pad_reflect", lambda x: pad(x, (2, 1, 1, 2), mode="reflect"), [a34]),
    ("pad_replicate", lambda x: pad(x, (2, 3, 1, 0), mode="replicate"), [a34]),
    ("cat", lambda a, b, c: ag.cat([a, b, c], 1), [a34, normal(3, 2), normal(3, 1)]),
    ("cat_dim0_same_input", lambda a: ag.cat([a, a * 2], 0), [a34]),
    ("stack", lambda a, b: ag.stack([a, b], 1), [a34, normal(3, 4)]),
    ("repeat", lambda x: x.repeat(2, 1, 3), [normal(3, 2)]),
    # matmul and cumsum
    ("matmul", lambda a, b: a @ b, [a34, normal(4, 2)]),
    ("matmul_batched_broadcast", lambda a, b: a @ b, [normal(2, 3, 4), normal(4, 2)]),
    ("matmul_batched_both", lambda a, b: a.matmul(b), [normal(2, 1, 3, 4), normal(3, 4, 2)]),
    ("matmul_vec_mat", lambda a, b: a @ b, [normal(3), normal(3, 4)]),
    ("matmul_mat_vec", lambda a, b: a @ b, [a34, normal(4)]),
    pytest.param("matmul_vec_vec", lambda a, b: a @ b, [normal(4), normal(4)]),
    ("matmul_of_views", lambda a, b: a.T[::-1] @ pad(b, (0, 0, 1, 0)), [a34, normal(2, 5)]),
    ("cumsum_0", lambda x: x.cumsum(0), [a34]),
    ("cumsum_last", lambda x: x.cumsum(-1), [normal(2, 3, 4)]),
    ("cumsum_of_view", lambda x: x.T[:, ::2].cumsum(1).exp(), [a34]),
]


PARAMS = [pytest.param(*c.values, marks=c.marks, id=c.values[0]) if hasattr(c, "marks") else pytest.param(*c, id=c[0])
          for c in CASES]


@pytest.mark.parametrize("name,f,inputs", PARAMS)
def test_gradcheck(name, f, inputs):
    check_grad(f, *inputs)


def _mlp(x, w1, b1, w2, b2):
    h = (x @ w1 + b1).tanh()
    logits = h @ w2 + b2
    return -(logits.log_softmax(-1) * ag.tensor(np.eye(3)[[0, 2, 1, 2]])).sum(-1)


def _mlp_relu(x, w1, b1, w2, b2):
    h = (x @ w1 + b1).relu()
    return (h @ w2 + b2).softmax(-1)


def _shared(x, y):
    s = x.sin()
    return s * s.exp() + (s - s.mean(1, keepdim=True)) / (y.abs() + 1) + (x * y).sum(0)


MLP_INPUTS = [normal(4, 3), normal(3, 5), normal(5), normal(5, 3), normal(3)]


@pytest.mark.parametrize("f,inputs", [
    pytest.param(_mlp, MLP_INPUTS, id="mlp_tanh_log_softmax"),
    pytest.param(_mlp_relu, MLP_INPUTS, id="mlp_relu_softmax"),
    pytest.param(_shared, [normal(3, 4), away_from_zero(3, 4)], id="shared_intermediate"),
])
def test_gradcheck_composite(f, inputs):
    check_grad(f, *inputs)


def test_numeric_grad_matches_closed_form():
    """The helper itself: d/dx sum(x^3 * w) = 3 x^2 w, d/dy sum(x*y) = x."""
    x, y, w = normal(2, 3), normal(2, 3), normal(2, 3)
    gx, gy = numeric_grad(lambda a, b: (a * a * a * ag.tensor(w) + a * b).sum(), [x, y])
    np.testing.assert_allclose(gx, 3 * x * x * w + y, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(gy, x, rtol=RTOL, atol=ATOL)


def test_gradient_accumulates_over_backward_calls():
    x = ag.tensor(normal(3), requires_grad=True)
    (x.sin().sum()).backward()
    (x.sin().sum()).backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.cos(x.numpy()), rtol=1e-12)
