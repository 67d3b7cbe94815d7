"""Reductions and the normalizations built from them (softmax, logsumexp, var...)."""
from __future__ import annotations

import math
from collections import namedtuple

from .. import dtypes as dt
from .errors import ArgumentError, EmptyReductionError, normalize_dim
from . import functions as F

ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])


def _axes(op: str, dim, ndim: int, axis=None):
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{op}: give either dim or axis, not both")
        dim = axis
    if dim is None or (isinstance(dim, (tuple, list)) and len(dim) == 0):
        return tuple(range(ndim))
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    axes = [normalize_dim(op, d, ndim) for d in dims]
    for i, a in enumerate(axes):
        if a in axes[:i]:
            raise ArgumentError(f"{op}: dim {a} appears multiple times in the list of dims {tuple(dims)}")
    return tuple(sorted(axes)) if ndim else ()  # a 0-d tensor takes dim 0 or -1 and keeps its value


class ReductionMixin:
    def _drop(self, t, axes, keepdim):
        return t if keepdim else t.reshape(*[s for i, s in enumerate(t.shape) if i not in axes])

    def sum(self, dim=None, keepdim: bool = False, dtype=None, axis=None):
        axes = _axes("sum", dim, self.ndim, axis)
        x = self
        if dtype is not None:
            x = x.to(dtype)
        elif not x.dtype.is_float:
            x = x.to(dt.int64)
        if not axes:
            return x
        return self._drop(F.Sum.apply(x, axes=axes), axes, keepdim)

    def mean(self, dim=None, keepdim: bool = False, dtype=None, axis=None):
        axes = _axes("mean", dim, self.ndim, axis)
        x = self.to(dtype) if dtype is not None else self
        if not x.dtype.is_float:
            raise TypeError(f"mean: input dtype should be floating point, got {x.dtype.name}")
        n = math.prod(self.shape[a] for a in axes)
        return x.sum(axes, keepdim) * (1.0 / n) if n else x.sum(axes, keepdim) * float("nan")

    def amax(self, dim=None, keepdim: bool = False, axis=None):
        axes = _axes("amax", dim, self.ndim, axis)
        if any(self.shape[a] == 0 for a in axes):
            raise EmptyReductionError(f"amax: cannot reduce over an empty dim of shape {self.shape}")
        if not axes:
            return self
        return self._drop(F.Max.apply(self, axes=axes), axes, keepdim)

    def amin(self, dim=None, keepdim: bool = False, axis=None):
        """Smallest values over ``dim`` (all dims when None), like ``torch.amin``."""
        axes = _axes("amin", dim, self.ndim, axis)
        if any(self.shape[a] == 0 for a in axes):
            raise EmptyReductionError(f"amin: cannot reduce over an empty dim of shape {self.shape}")
        if self.dtype is dt.bool_:
            return (~self).amax(dim, keepdim, axis).logical_not()
        return -((-self).amax(dim, keepdim, axis))

    def argmax(self, dim=None, keepdim: bool = False):
        """Index of the first maximum along ``dim`` (over the flattened tensor if None)."""
        if dim is None:
            return self.reshape(-1).argmax(0)
        d = normalize_dim("argmax", dim, self.ndim)
        n = self.shape[d]
        x = self.detach()
        hit = x == x.amax(d, keepdim=True)
        shape = [1] * self.ndim
        shape[d] = n
        from .creation import arange
        rev = (n - arange(n, dtype=dt.int64, device=self.device)).reshape(*shape)
        idx = n - (hit.to(dt.int64) * rev).amax(d, keepdim=True)
        return idx if keepdim else idx.squeeze(d)

    def argmin(self, dim=None, keepdim: bool = False):
        return (-self if self.dtype is not dt.bool_ else ~self).argmax(dim, keepdim)

    def max(self, dim=None, keepdim: bool = False):
        """Without ``dim`` the largest element; with it (values, indices) as in PyTorch."""
        if dim is None:
            return self.amax()
        if not isinstance(dim, int):
            from .tensor import Tensor
            if isinstance(dim, Tensor):
                return self.maximum(dim)
        return self._select(dim, keepdim, self.argmax(dim, keepdim=True))

    def min(self, dim=None, keepdim: bool = False):
        if dim is None:
            return self.amin()
        if not isinstance(dim, int):
            from .tensor import Tensor
            if isinstance(dim, Tensor):
                return self.minimum(dim)
        return self._select(dim, keepdim, self.argmin(dim, keepdim=True))

    def _select(self, dim, keepdim, idx):
        from .creation import arange
        from .tensor import where
        d = normalize_dim("max", dim, self.ndim)
        shape = [1] * self.ndim
        shape[d] = self.shape[d]
        onehot = arange(self.shape[d], dtype=dt.int64, device=self.device).reshape(*shape) == idx
        values = where(onehot, self, 0).sum(d, keepdim=True)
        if not keepdim:
            values, idx = values.squeeze(d), idx.squeeze(d)
        return ValuesIndices(values, idx)

    def var(self, dim=None, unbiased=None, keepdim: bool = False, correction=None, axis=None):
        """Variance; unbiased (correction=1) by default like PyTorch."""
        if unbiased is not None and correction is not None:
            raise TypeError("var: give either unbiased or correction, not both")
        c = correction if correction is not None else (0 if unbiased is False else 1)
        axes = _axes("var", dim, self.ndim, axis)
        n = math.prod(self.shape[a] for a in axes)
        mean = self.mean(axes, keepdim=True)
        d = self - mean
        return (d * d).sum(axes, keepdim) * (1.0 / max(0, n - c)) if n - c > 0 else \
            (d * d).sum(axes, keepdim) * float("nan")

    def std(self, dim=None, unbiased=None, keepdim: bool = False, correction=None, axis=None):
        """Standard deviation (square root of ``var``), unbiased by default like PyTorch."""
        _axes("std", dim, self.ndim, axis)
        return self.var(dim, unbiased, keepdim, correction, axis).sqrt()

    def logsumexp(self, dim, keepdim: bool = False):
        from .tensor import where
        axes = _axes("logsumexp", dim, self.ndim)
        if any(self.shape[a] == 0 for a in axes):  # log of an empty sum: -inf, as in PyTorch
            return self.exp().sum(axes, keepdim).log()
        m = self.detach().amax(axes, keepdim=True)
        m = where(m.abs() == float("inf"), 0.0, m)
        out = (self - m).exp().sum(axes, keepdim=True).log() + m
        return self._drop(out, axes, keepdim)

    def softmax(self, dim: int):
        d = normalize_dim("softmax", dim, self.ndim)
        e = (self - self.detach().amax(d, keepdim=True)).exp()
        return e / e.sum(d, keepdim=True)

    def log_softmax(self, dim: int):
        d = normalize_dim("log_softmax", dim, self.ndim)
        z = self - self.detach().amax(d, keepdim=True)
        return z - z.exp().sum(d, keepdim=True).log()
