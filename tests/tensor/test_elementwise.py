"""Element-wise ops, broadcasting, where and clamp: values and gradients against PyTorch."""
import numpy as np
import pytest
import torch

from torch_compare import check, check_forward, is_torch, randn, uniform

FLOATS = [np.float32, np.float64]
SHAPES = [(), (7,), (3, 4), (2, 3, 5)]


def _domain(name, shape, dtype, seed=0):
    if name in ("log", "sqrt", "rsqrt"):
        return uniform(0.1, 3.0, *shape, dtype=dtype, seed=seed)
    if name == "log1p":
        return uniform(-0.9, 3.0, *shape, dtype=dtype, seed=seed)
    x = randn(*shape, dtype=dtype, seed=seed) * 2
    if name in ("abs", "sign", "relu") and x.size >= 3:
        x.reshape(-1)[::3] = 0  # the kink: torch's gradient there is 0
    return x


UNARY = ["neg", "abs", "sign", "exp", "log", "log1p", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid", "relu"]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", UNARY)
def test_unary(name, shape, dtype):
    check(lambda lib, x: getattr(x, name)(), _domain(name, shape, dtype))


@pytest.mark.parametrize("name", UNARY)
def test_unary_function_form_on_view(name):
    # the op applied to a non-contiguous input (a transposed view)
    x = _domain(name, (4, 3), np.float32, seed=5)
    check(lambda lib, x: getattr(x.T, name)() * 1.5, x)


def test_neg_operator():
    check(lambda lib, x: -x, randn(3, 4))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("beta,threshold", [(1.0, 20.0), (2.0, 20.0), (1.0, 1.5), (0.5, 3.0)])
def test_softplus(beta, threshold, dtype):
    x = (randn(4, 6, dtype=dtype, seed=3) * 8).astype(dtype)  # spans both sides of the threshold

    def f(lib, x):
        if is_torch(lib):
            return torch.nn.functional.softplus(x, beta=beta, threshold=threshold)
        return x.softplus(beta, threshold)
    check(f, x)


def test_softplus_large_inputs_stay_finite():
    x = np.array([-100.0, -30.0, 0.0, 30.0, 100.0], np.float32)
    check(lambda lib, x: torch.nn.functional.softplus(x) if is_torch(lib) else x.softplus(), x)


# ---- binary arithmetic ----------------------------------------------------------------------
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "add_method": lambda a, b: a.add(b),
    "sub_alpha": lambda a, b: a.sub(b, alpha=2),
    "add_alpha": lambda a, b: a.add(b, alpha=-0.5),
    "mul_method": lambda a, b: a.mul(b),
    "div_method": lambda a, b: a.div(b),
}
BROADCAST = [((3, 4), (3, 4)), ((3, 1, 5), (4, 5)), ((1,), (2, 3)), ((2, 3), ()), ((4, 1), (1, 6)),
             ((), ())]


def _away_from_zero(shape, dtype, seed):
    x = uniform(0.5, 2.0, *shape, dtype=dtype, seed=seed)
    sign = np.where(randn(*shape, seed=seed + 7) > 0, 1, -1).astype(dtype)
    return x * sign


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("sa,sb", BROADCAST)
@pytest.mark.parametrize("name", list(BINARY))
def test_binary(name, sa, sb, dtype):
    a = randn(*sa, dtype=dtype, seed=1)
    b = _away_from_zero(sb, dtype, 2) if "div" in name else randn(*sb, dtype=dtype, seed=2)
    op = BINARY[name]
    check(lambda lib, a, b: op(a, b), a, b)


SCALAR_FORMS = {
    "x+s": lambda x: x + 2.5, "s+x": lambda x: 2.5 + x,
    "x-s": lambda x: x - 1.5, "s-x": lambda x: 1.5 - x,
    "x*s": lambda x: x * -3.0, "s*x": lambda x: -3.0 * x,
    "x/s": lambda x: x / 4.0, "s/x": lambda x: 4.0 / x,
    "x+int": lambda x: x + 2, "int-x": lambda x: 2 - x, "int/x": lambda x: 3 / x,
    "x*int": lambda x: x * 3,
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", list(SCALAR_FORMS))
def test_scalar_forms(name, dtype):
    op = SCALAR_FORMS[name]
    check(lambda lib, x: op(x), _away_from_zero((3, 5), dtype, 4))


def test_scalar_keeps_float32():
    # a Python float does not promote a float32 tensor (PyTorch's rule)
    check(lambda lib, x: x * 1e-3 + 1, randn(4))


def test_same_tensor_both_sides():
    check(lambda lib, x: x * x + x / (x * x + 1) - x, randn(3, 4))


# ---- pow ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("e", [2, 0.5, 3, -1, 1.7, 1, 0, -0.5, -2, 2.0])
def test_pow_scalar_exponent(e, dtype):
    x = uniform(0.3, 2.5, 3, 4, dtype=dtype)
    check(lambda lib, x: x ** e, x)


@pytest.mark.parametrize("e", [2, 3, -1])
def test_pow_integer_exponent_negative_base(e):
    check(lambda lib, x: x ** e, _away_from_zero((3, 4), np.float32, 9))


def test_pow_method():
    check(lambda lib, x: x.pow(1.7), uniform(0.3, 2.5, 6))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("sa,sb", [((3, 4), (3, 4)), ((3, 1, 5), (4, 5)), ((2, 3), ())])
def test_pow_tensor_tensor(sa, sb, dtype):
    a = uniform(0.3, 2.5, *sa, dtype=dtype, seed=1)
    b = uniform(-2.0, 2.0, *sb, dtype=dtype, seed=2)
    check(lambda lib, a, b: a ** b, a, b)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("base", [2.0, 0.5, 3])
def test_pow_scalar_base(base, dtype):
    check(lambda lib, x: base ** x, uniform(-2.0, 2.0, 3, 4, dtype=dtype))


def test_pow_zero_base_gradients():
    # d/da a**b at a=0 (b>=1) and d/db at a=0 are 0 in torch; no nan may leak
    a = np.array([0.0, 0.0, 1.5, 2.0], np.float32)
    b = np.array([2.0, 1.0, 0.0, 1.5], np.float32)
    check(lambda lib, a, b: a ** b, a, b)


# ---- maximum / minimum ----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", ["maximum", "minimum"])
@pytest.mark.parametrize("sa,sb", [((3, 4), (3, 4)), ((3, 1, 5), (4, 5)), ((2, 3), ())])
def test_maximum_minimum(name, sa, sb, dtype):
    a = randn(*sa, dtype=dtype, seed=1)
    b = randn(*sb, dtype=dtype, seed=2)
    check(lambda lib, a, b: getattr(lib, name)(a, b) if is_torch(lib) else getattr(a, name)(b), a, b)


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum_ties_split_gradient(name):
    a = np.array([[1.0, 2.0, -3.0], [0.5, 0.5, 4.0]], np.float32)
    b = np.array([[1.0, 1.0, -3.0], [0.5, 2.0, 4.0]], np.float32)
    check(lambda lib, a, b: getattr(a, name)(b), a, b)


# ---- atan2 ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("sa,sb", [((3, 4), (3, 4)), ((3, 1, 5), (4, 5)), ((2, 3), ())])
def test_atan2(sa, sb, dtype):
    a = randn(*sa, dtype=dtype, seed=3)
    b = randn(*sb, dtype=dtype, seed=4)
    check(lambda lib, a, b: lib.atan2(a, b) if is_torch(lib) else a.atan2(b), a, b)


def test_atan2_signed_zeros_and_origin_gradient():
    # quadrant rules on the axes, and a zero (not nan) gradient at the origin, as in torch
    a = np.array([0.0, -0.0, 0.0, -0.0, 0.0, 1.0, -1.0], np.float32)
    b = np.array([1.0, 1.0, -1.0, -1.0, 0.0, 0.0, 0.0], np.float32)
    check(lambda lib, a, b: lib.atan2(a, b) if is_torch(lib) else a.atan2(b), a, b)


# ---- comparisons ----------------------------------------------------------------------------
CMP = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b,
       "le": lambda a, b: a <= b, "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b}


def _with_ties(shape, dtype, seed):
    return np.round(randn(*shape, seed=seed) * 2).astype(dtype)  # small ints: many ties


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32])
@pytest.mark.parametrize("sa,sb", [((3, 4), (3, 4)), ((3, 1, 5), (4, 5)), ((2, 3), ())])
@pytest.mark.parametrize("name", list(CMP))
def test_comparison(name, sa, sb, dtype):
    op = CMP[name]
    check_forward(lambda lib, a, b: op(a, b), _with_ties(sa, dtype, 1), _with_ties(sb, dtype, 2))


@pytest.mark.parametrize("name", list(CMP))
def test_comparison_methods_and_scalars(name):
    x = _with_ties((4, 5), np.float32, 3)
    check_forward(lambda lib, x: getattr(x, name)(1.0), x)
    check_forward(lambda lib, x: CMP[name](x, 0), x)
    check_forward(lambda lib, x: CMP[name](1.0, x), x)  # reflected: 1.0 == x etc.


def test_comparison_does_not_require_grad():
    check(lambda lib, a, b: (a < b, a * (a < b)), randn(3, 4, seed=1), randn(3, 4, seed=2))


# ---- where ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("sc,sx,sy", [((3, 4), (3, 4), (3, 4)), ((3, 1), (1, 4), (3, 4)),
                                      ((4,), (3, 4), ()), ((2, 1, 4), (3, 1), (1, 4))])
def test_where(sc, sx, sy, dtype):
    c = randn(*sc, seed=9) > 0
    check(lambda lib, c, x, y: lib.where(c, x, y), c, randn(*sx, dtype=dtype, seed=1),
          randn(*sy, dtype=dtype, seed=2))


def test_where_with_scalars():
    c = randn(3, 4, seed=9) > 0
    check(lambda lib, c, x: lib.where(c, x, 0.5), c, randn(3, 4))
    check(lambda lib, c, x: lib.where(c, -1.0, x), c, randn(3, 4))


def test_where_condition_from_tensor_comparison():
    check(lambda lib, x, y: lib.where(x > y, x * 2, y.exp()), randn(3, 4, seed=1), randn(4, seed=2))


# ---- clamp ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("lo,hi", [(-0.5, None), (None, 0.5), (-0.5, 0.5), (0.0, 0.0), (-1, 1)])
def test_clamp(lo, hi, dtype):
    x = randn(5, 6, dtype=dtype)
    x.reshape(-1)[:4] = [-0.5, 0.5, 0.0, -1.0]  # values exactly at the bounds
    check(lambda lib, x: x.clamp(min=lo, max=hi), x)
    check(lambda lib, x: x.clamp(lo, hi), x)


def test_clip_alias():
    check(lambda lib, x: x.clip(-0.3, 0.3), randn(4, 4))


def test_clamp_int_tensor_keeps_dtype():
    check_forward(lambda lib, x: x.clamp(-1, 2), np.arange(-4, 5, dtype=np.int64))


# ---- fused chains -----------------------------------------------------------------------------
def test_chain_of_elementwise_ops():
    def f(lib, x, y):
        z = (x * y).tanh() + (x - y).sigmoid() * x.exp()
        return (z / (y * y + 1)).sqrt().log1p()
    check(f, randn(3, 1, 4, seed=1), randn(5, 4, seed=2))
