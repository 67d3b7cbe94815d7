"""Scaled dot-product attention with PyTorch's signature and semantics, as one fused library op.

``scaled_dot_product_attention`` flattens the batch dims, turns a boolean mask into an additive
bias (0 where kept, -inf where dropped) and records one ``attention`` node
(``graph.library_ops.ATTENTION``): each device computes it without the whole score matrix
(blocks of scores on the CPU, an online softmax on the GPU). A mask broadcast over the heads
(a key-padding mask) or over the batch (T5's position bias) is handed over as it is, never
repeated. The gradient recomputes the probabilities with tensor ops.

A query whose keys are all masked out gives zeros (and zero gradients), as PyTorch's does.
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

from ..graph import lazy
from ..graph.library_ops import ATTENTION
from ..tensor import where
from ..tensor.autograd import Function
from ..tensor.errors import ShapeError, broadcast_shapes
from ..tensor.tensor import Tensor


def _check(q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor]) -> None:
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ShapeError(f"scaled_dot_product_attention: query, key and value need at least 2 dims, "
                         f"got {q.shape}, {k.shape}, {v.shape}")
    if q.shape[-1] != k.shape[-1]:
        raise ShapeError(f"scaled_dot_product_attention: query {q.shape} and key {k.shape} differ in the last dim")
    if k.shape[-2] != v.shape[-2]:
        raise ShapeError(f"scaled_dot_product_attention: key {k.shape} and value {v.shape} differ in length")
    if not q.dtype.is_float or k.dtype is not q.dtype or v.dtype is not q.dtype:
        raise TypeError(f"scaled_dot_product_attention: query, key and value must share one floating dtype, "
                        f"got {q.dtype.name}, {k.dtype.name}, {v.dtype.name}")
    if mask is not None and mask.dtype.kind != "b" and not mask.dtype.is_float:
        raise TypeError(f"scaled_dot_product_attention: attn_mask must be boolean or floating, got {mask.dtype.name}")


def _safe_softmax(scores: Tensor) -> Tensor:
    """Softmax over the last dim where a row of -inf gives zeros instead of NaN."""
    m = scores.detach().amax(-1, keepdim=True)
    e = (scores - where(m == float("-inf"), 0.0, m)).exp()
    s = e.sum(-1, keepdim=True)
    return e / where(s > 0, s, 1.0)


def _buffer(node):
    """What the op reads for ``node``: its base when ``node`` only reshapes it (the same elements
    in the same order: no copy), else a contiguous copy."""
    if node.is_view and node.view.is_contiguous and node.base.numel == node.numel:
        return node.base
    return lazy.contiguous(node)


class _Attention(Function):
    """The fused op over (N, Lq, D), (N, Lk, D), (N, Lk, Dv) and an optional bias
    (outer, inner', rows, Lk); its backward recomputes the probabilities with tensor ops."""

    def forward(self, q, k, v, bias=None, *, scale: float, inner: int):
        self.q, self.k, self.v, self.bias = q, k, v, bias
        self.scale, self.inner = scale, inner
        srcs = [_buffer(q), _buffer(k), _buffer(v)]
        if bias is not None:
            srcs.append(lazy.contiguous(bias))
        dims = (q.shape[0], q.shape[1], k.shape[1], q.shape[2], v.shape[2])
        self.out = lazy.library(ATTENTION, srcs, q.dtype, (scale, inner, dims))
        return self.out

    def backward(self, g):
        t = Tensor._from_node
        n, lq, d = self.q.shape
        lk, dv = self.v.shape[1:]
        split = (n // self.inner, self.inner)
        q, k, v = t(self.q).reshape(*split, lq, d), t(self.k).reshape(*split, lk, d), t(self.v).reshape(*split, lk, dv)
        g4, out = g.reshape(*split, lq, dv), t(self.out).reshape(*split, lq, dv)
        scores = (q @ k.transpose(-1, -2)) * self.scale
        if self.bias is not None:
            scores = scores + t(self.bias)
        p = _safe_softmax(scores)
        dp = g4 @ v.transpose(-1, -2)
        ds = p * (dp - (g4 * out).sum(-1, keepdim=True))
        grads: List[Optional[Tensor]] = [
            (ds @ k * self.scale).reshape(n, lq, d) if self.needs_grad[0] else None,
            (ds.transpose(-1, -2) @ q * self.scale).reshape(n, lk, d) if self.needs_grad[1] else None,
            (p.transpose(-1, -2) @ g4).reshape(n, lk, dv) if self.needs_grad[2] else None]
        if self.bias is not None:
            grads.append(None)
            if self.needs_grad[3]:
                axes = tuple(i for i, (a, b) in enumerate(zip(self.bias.shape, ds.shape)) if a != b)
                grads[3] = ds.sum(dim=axes, keepdim=True) if axes else ds
        return tuple(grads)


def _bias_layout(mask: Tensor, batch: Tuple[int, ...], lq: int, lk: int) -> Tuple[Tensor, int]:
    """The additive mask as (outer, inner', rows, Lk) and the ``inner`` batch count the op reads
    it with (see ``ATTENTION``): the batch dims it is broadcast over stay broadcast when they form
    one block before or after the dims it covers; otherwise it is repeated over the batch."""
    mask = mask.reshape(*(1,) * (len(batch) + 2 - mask.ndim), *mask.shape)
    rows = lq if mask.shape[-2] == lq else 1
    mask = mask.expand(*mask.shape[:-2], rows, lk)
    runs: List[List] = []   # [covered, size] blocks of the batch dims of size > 1, in order
    for size, m in zip(batch, mask.shape[:-2]):
        if size == 1:
            continue
        covered = m == size
        if runs and runs[-1][0] == covered:
            runs[-1][1] *= size
        else:
            runs.append([covered, size])
    n = math.prod(batch)
    kinds = [c for c, _ in runs]
    if kinds in ([], [False]):
        outer, inner_b, inner = 1, 1, 1
    elif kinds == [True]:
        outer, inner_b, inner = 1, n, n
    elif kinds == [True, False]:
        outer, inner_b, inner = runs[0][1], 1, runs[1][1]
    elif kinds == [False, True]:
        outer, inner_b, inner = 1, runs[1][1], runs[1][1]
    else:
        mask = mask.expand(*batch, rows, lk)
        outer, inner_b, inner = 1, n, n
    return mask.reshape(outer, inner_b, rows, lk), inner


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Optional[Tensor] = None,
                                 scale: Optional[float] = None) -> Tensor:
    """softmax(query @ key^T * scale + mask) @ value over the last two dims, batched over the rest.

    ``attn_mask`` broadcasts to (..., L_query, L_key): a boolean mask keeps the positions where it
    is True (as PyTorch's), a floating mask is added to the scores. ``scale`` defaults to
    1/sqrt(head dim). A query with every key masked out gives zeros, as in PyTorch."""
    _check(query, key, value, attn_mask)
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    if not math.isfinite(scale):
        raise ValueError(f"scaled_dot_product_attention: scale must be finite, got {scale}")
    lq, d = query.shape[-2:]
    lk, dv = value.shape[-2:]
    batch = broadcast_shapes("scaled_dot_product_attention", query.shape[:-2], key.shape[:-2], value.shape[:-2])
    if attn_mask is not None:
        full = broadcast_shapes("scaled_dot_product_attention (attn_mask)", (*batch, lq, lk), attn_mask.shape)
        if full != (*batch, lq, lk):
            raise ShapeError(f"scaled_dot_product_attention: attn_mask {attn_mask.shape} does not broadcast to the "
                             f"scores' shape {(*batch, lq, lk)}")
    n = math.prod(batch)
    if 0 in (n, lq, lk, d, dv):
        return _composed(query, key, value, attn_mask, scale)
    q = query.expand(*batch, lq, d).reshape(n, lq, d)
    k = key.expand(*batch, lk, d).reshape(n, lk, d)
    v = value.expand(*batch, lk, dv).reshape(n, lk, dv)
    if attn_mask is None:
        out = _Attention.apply(q, k, v, scale=scale, inner=1)
    else:
        bias = attn_mask
        if bias.dtype.kind == "b":
            bias = where(bias, 0.0, float("-inf"))
        bias, inner = _bias_layout(bias.to(dtype=query.dtype), batch, lq, lk)
        out = _Attention.apply(q, k, v, bias, scale=scale, inner=inner)
    return out.reshape(*batch, lq, dv)


def _composed(query: Tensor, key: Tensor, value: Tensor, attn_mask: Optional[Tensor], scale: float) -> Tensor:
    """The same value from products and a softmax (for empty sizes, which the op does not take)."""
    scores = (query * scale) @ key.transpose(-1, -2)
    if attn_mask is not None:
        scores = where(attn_mask, scores, float("-inf")) if attn_mask.dtype.kind == "b" else scores + attn_mask
    return _safe_softmax(scores) @ value
