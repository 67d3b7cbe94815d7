"""Run one tensor program with audiograd and with PyTorch, and compare values and gradients.

A test writes its program once as ``f(lib, *tensors)``; ``lib`` is either the ``audiograd``
module or the ``torch`` module, so ``lib.where(...)``, ``lib.cat(...)`` and tensor methods
read the same for both. Where the two spell an op differently, branch on ``is_torch(lib)``.

``check(f, *arrays)`` then
  1. makes audiograd and torch tensors from the same numpy arrays (float arrays require grad),
  2. compares every output's shape, dtype and values,
  3. backpropagates ``sum(out_k * w_k)`` over the float outputs, with random weights ``w_k``,
     and compares every input's ``.grad``.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch

import audiograd as ag

# default tolerances per dtype: (rtol, atol)
TOL = {
    np.dtype(np.float32): (1e-5, 1e-6),
    np.dtype(np.float64): (1e-10, 1e-12),
}


def is_torch(lib) -> bool:
    return lib is torch


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def randn(*shape, dtype=np.float32, seed: int = 0) -> np.ndarray:
    return rng(seed).standard_normal(shape).astype(dtype)


def uniform(lo, hi, *shape, dtype=np.float32, seed: int = 0) -> np.ndarray:
    return rng(seed).uniform(lo, hi, shape).astype(dtype)


def randint(lo, hi, *shape, dtype=np.int64, seed: int = 0) -> np.ndarray:
    return rng(seed).integers(lo, hi, shape).astype(dtype)


def _outputs(out) -> list:
    """Flatten a tensor / tuple / namedtuple / list result into a list of tensors."""
    if isinstance(out, (tuple, list)):
        return [o for x in out for o in _outputs(x)]
    return [out]


def _dtype_name(t) -> str:
    if isinstance(t, torch.Tensor):
        return str(t.dtype).replace("torch.", "")
    return t.dtype.name


def _assert_close(name: str, got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> None:
    assert got.shape == want.shape, f"{name}: shape {got.shape} != torch {want.shape}"
    if want.dtype == np.bool_ or want.dtype.kind in "iu":
        np.testing.assert_array_equal(got, want, err_msg=name)
    else:
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True, err_msg=name)


def check(f: Callable, *arrays: np.ndarray, rtol: Optional[float] = None, atol: Optional[float] = None,
          grad_rtol: Optional[float] = None, grad_atol: Optional[float] = None, grad: bool = True,
          grad_inputs: Optional[Sequence[bool]] = None, seed: int = 1234) -> None:
    """Compare ``f(audiograd, *tensors)`` with ``f(torch, *tensors)``; see the module docstring.

    ``rtol``/``atol`` default to ``TOL`` for the widest float input dtype; ``grad_rtol``/``grad_atol``
    default to the forward tolerances. ``grad_inputs`` picks which float inputs require grad
    (all by default).
    """
    arrays = [np.asarray(a) for a in arrays]
    floats = [a.dtype.kind == "f" for a in arrays]
    need = list(grad_inputs) if grad_inputs is not None else floats
    need = [bool(n) and fl and grad for n, fl in zip(need, floats)]
    float_dtypes = [a.dtype for a in arrays if a.dtype.kind == "f"] or [np.dtype(np.float32)]
    widest = max(float_dtypes, key=lambda d: d.itemsize)
    drt, dat = TOL[widest]
    rtol = drt if rtol is None else rtol
    atol = dat if atol is None else atol
    grad_rtol = rtol if grad_rtol is None else grad_rtol
    grad_atol = atol if grad_atol is None else grad_atol

    ag_in = [ag.tensor(a.copy(), requires_grad=n) for a, n in zip(arrays, need)]
    th_in = [torch.tensor(a.copy(), requires_grad=n) for a, n in zip(arrays, need)]
    ag_out = _outputs(f(ag, *ag_in))
    th_out = _outputs(f(torch, *th_in))
    assert len(ag_out) == len(th_out), f"{len(ag_out)} outputs, torch gives {len(th_out)}"

    for k, (a, t) in enumerate(zip(ag_out, th_out)):
        assert isinstance(a, ag.Tensor), f"output {k} is {type(a).__name__}, not an audiograd Tensor"
        assert tuple(a.shape) == tuple(t.shape), f"output {k}: shape {tuple(a.shape)} != torch {tuple(t.shape)}"
        assert _dtype_name(a) == _dtype_name(t), f"output {k}: dtype {_dtype_name(a)} != torch {_dtype_name(t)}"
        _assert_close(f"output {k}", a.numpy(), t.detach().numpy(), rtol, atol)

    if not any(need):
        return
    r = rng(seed)
    ag_loss = th_loss = None
    for a, t in zip(ag_out, th_out):
        if not t.requires_grad:
            assert not a.requires_grad or not a.dtype.is_float, "audiograd output requires grad, torch's does not"
            continue
        assert a.requires_grad, "torch output requires grad, audiograd's does not"
        w = r.standard_normal(tuple(t.shape)).astype(t.detach().numpy().dtype)
        al = (a * ag.tensor(w)).sum()
        tl = (t * torch.tensor(w)).sum()
        ag_loss = al if ag_loss is None else ag_loss + al
        th_loss = tl if th_loss is None else th_loss + tl
    if th_loss is None:
        return
    ag_loss.backward()
    th_loss.backward()
    for k, (a, t, n) in enumerate(zip(ag_in, th_in, need)):
        if not n:
            continue
        want = t.grad.numpy() if t.grad is not None else np.zeros(t.shape, t.detach().numpy().dtype)
        assert a.grad is not None or not want.any(), f"input {k}: audiograd grad is None, torch's is not zero"
        got = a.grad.numpy() if a.grad is not None else np.zeros_like(want)
        if a.grad is not None:
            assert _dtype_name(a.grad) == _dtype_name(t), \
                f"input {k}: grad dtype {_dtype_name(a.grad)} != input dtype {_dtype_name(t)}"
        _assert_close(f"grad of input {k}", got, want, grad_rtol, grad_atol)


def check_forward(f: Callable, *arrays: np.ndarray, **kw) -> None:
    """``check`` without gradients (comparisons, integer ops, indices...)."""
    check(f, *arrays, grad=False, **kw)
