"""matmul against PyTorch, and dtype rules (float64 path, promotion, int and bool results)."""
import numpy as np
import pytest
import torch

import audiograd as ag
from torch_compare import check, check_forward, randint, randn

FLOATS = [np.float32, np.float64]


# ---- matmul -------------------------------------------------------------------------------------
MATMUL_SHAPES = [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)), ((4,), (4, 5)),
                 ((3, 4), (4,)), ((4,), (4,)), ((2, 1, 3, 4), (5, 4, 6)), ((2, 3, 4), (2, 4, 5)),
                 ((4,), (2, 4, 3)), ((2, 3, 4), (4,)), ((1, 1), (1, 1))]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES)
def test_matmul(sa, sb, dtype):
    a, b = randn(*sa, dtype=dtype, seed=1), randn(*sb, dtype=dtype, seed=2)
    check(lambda lib, a, b: a @ b, a, b)


def test_matmul_method_and_transposed_operands():
    a, b = randn(5, 3, seed=1), randn(4, 5, seed=2)
    check(lambda lib, a, b: a.T.matmul(b.T), a, b)
    check(lambda lib, a, b: (a.T @ b[1:, ::2].T).exp(), a, randn(4, 10, seed=3))


def test_matmul_of_computed_operands_and_chain():
    def f(lib, a, b, c):
        return ((a * 2).tanh() @ (b + 1)) @ c.sigmoid()
    check(f, randn(3, 4, seed=1), randn(4, 5, seed=2), randn(5, 2, seed=3))


def test_matmul_only_one_operand_requires_grad():
    a, b = randn(3, 4, seed=1), randn(4, 2, seed=2)
    check(lambda lib, a, b: a @ b, a, b, grad_inputs=[True, False])
    check(lambda lib, a, b: a @ b, a, b, grad_inputs=[False, True])


def test_matmul_larger():
    # 64-term dot products: float32 accumulation order differs from torch's BLAS
    a, b = randn(16, 64, seed=1), randn(64, 24, seed=2)
    check(lambda lib, a, b: a @ b, a, b, atol=1e-5)


# ---- float64 and promotion ----------------------------------------------------------------------
def test_float64_path_keeps_precision():
    # 1 + 1e-12 is lost in float32; float64 has to keep it through a fused chain and a reduction
    x = np.full((4, 8), 1e-12, np.float64)
    check(lambda lib, x: ((x + 1) - 1).sum(1) * 1e12, x, rtol=1e-3)
    check(lambda lib, x: (x.exp() * x.sin()).sum(), randn(100, dtype=np.float64))


@pytest.mark.parametrize("op", ["add", "mul", "div", "maximum_", "cmp"])
def test_float32_float64_promote(op):
    f = {"add": lambda a, b: a + b, "mul": lambda a, b: a * b, "div": lambda a, b: a / b,
         "maximum_": lambda a, b: a.minimum(b), "cmp": lambda a, b: a < b}[op]
    a, b = randn(3, 4, seed=1), randn(4, dtype=np.float64, seed=2)
    check(lambda lib, a, b: f(a, b), a, b)
    check(lambda lib, a, b: f(b, a), a, b)


@pytest.mark.parametrize("name", ["where", "cat", "matmul"])
def test_promotion_in_other_ops(name):
    a, b = randn(3, 3, seed=1), randn(3, 3, dtype=np.float64, seed=2)
    if name == "where":
        check(lambda lib, a, b: lib.where(a > 0, a, b), a, b)
    elif name == "cat":
        check(lambda lib, a, b: lib.cat([a, b]), a, b)
    else:
        with pytest.raises(TypeError):
            ag.tensor(a) @ ag.tensor(b)  # torch also refuses mixed float dtypes in matmul
        with pytest.raises(RuntimeError):
            torch.tensor(a) @ torch.tensor(b)


@pytest.mark.parametrize("src,dst", [("float32", "float64"), ("float64", "float32")])
def test_cast_gradient_returns_to_source_dtype(src, dst):
    x = randn(3, 4, dtype=np.dtype(src))
    check(lambda lib, x: x.to(getattr(lib, dst)).exp(), x, rtol=1e-5, atol=1e-6)
    check(lambda lib, x: x.double() * 2 + x.float(), x, rtol=1e-5, atol=1e-6)


INT_CASES = {
    "int_plus_int": lambda a, b: a + b,
    "int_times_int": lambda a, b: a * b,
    "int_minus_int": lambda a, b: a - b,
    "int_true_div": lambda a, b: a / (b.abs() + 1),
    "int_plus_float_scalar": lambda a, b: a + 1.5,
    "int_times_int_scalar": lambda a, b: a * 3,
    "int_pow_2": lambda a, b: a ** 2,
    "int_pow_3": lambda a, b: a ** 3,
    "int_neg_abs": lambda a, b: (-a).abs(),
    "int_maximum": lambda a, b: a.maximum(b),
    "int_minimum": lambda a, b: a.minimum(b),
    "int_exp_is_float": lambda a, b: (a.clamp(-3, 3)).exp(),
    "int_cmp_bool": lambda a, b: a >= b,
    "int_where": lambda a, b: a.where(a > b, b),
    "int_sum_dims": lambda a, b: a.sum((0, 1), keepdim=True),
    "int_amax": lambda a, b: a.amax(1),
}


@pytest.mark.parametrize("dtype", [np.int64, np.int32])
@pytest.mark.parametrize("name", list(INT_CASES))
def test_int_ops(name, dtype):
    f = INT_CASES[name]
    check_forward(lambda lib, a, b: f(a, b), randint(-9, 9, 3, 4, dtype=dtype, seed=1),
                  randint(-9, 9, 4, dtype=dtype, seed=2))


def test_int32_int64_promotion_and_int_float_tensor():
    a, b = randint(-9, 9, 3, dtype=np.int32), randint(-9, 9, 3, dtype=np.int64, seed=1)
    check_forward(lambda lib, a, b: a + b, a, b)
    check(lambda lib, a, x: a * x, a, randn(3))  # int32 tensor * float32 tensor -> float32
    check(lambda lib, a, x: x / a.clamp(1, 9), b, randn(3, dtype=np.float64))


def test_bool_ops():
    a, b = randn(3, 4, seed=1) > 0, randn(3, 4, seed=2) > 0
    check_forward(lambda lib, a, b: (a & b, a | b, ~a, a == b, a.sum(), a + b, a * b), a, b)
    check_forward(lambda lib, a, b: a.int() + b.long(), a, b)


def test_tensor_constructor_dtypes():
    assert ag.tensor([1, 2]).dtype is ag.int64
    assert ag.tensor([1.0, 2]).dtype is ag.float32
    assert ag.tensor([True, False]).dtype is ag.bool
    assert ag.tensor(np.zeros(2, np.float64)).dtype is ag.float64
    assert ag.tensor(np.zeros(2, np.int32)).dtype is ag.int32
    assert ag.tensor(2.5).shape == () and ag.tensor(np.float64(2.5)).dtype is ag.float64
    assert ag.tensor(np.array(3.0)).shape == ()


def test_tensor_copies_its_numpy_input():
    a = np.zeros(3, np.float32)
    t = ag.tensor(a)
    a[0] = 5
    np.testing.assert_array_equal(t.numpy(), [0, 0, 0])
