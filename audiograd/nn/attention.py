"""Scaled dot-product attention with PyTorch's signature and semantics."""
from __future__ import annotations

import math
from typing import Optional

from ..tensor import where
from ..tensor.errors import ShapeError
from ..tensor.tensor import Tensor


def _check(q: Tensor, k: Tensor, v: Tensor) -> None:
    if q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim:
        raise ShapeError(f"scaled_dot_product_attention: query, key and value need the same number of dims (>= 2), "
                         f"got {q.shape}, {k.shape}, {v.shape}")
    if q.shape[-1] != k.shape[-1]:
        raise ShapeError(f"scaled_dot_product_attention: query {q.shape} and key {k.shape} differ in the last dim")
    if k.shape[-2] != v.shape[-2]:
        raise ShapeError(f"scaled_dot_product_attention: key {k.shape} and value {v.shape} differ in length")


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Optional[Tensor] = None,
                                 scale: Optional[float] = None) -> Tensor:
    """softmax(query @ key^T * scale + mask) @ value over the last two dims, batched over the rest.

    ``attn_mask`` broadcasts to (..., L_query, L_key): a boolean mask keeps the positions where it
    is True (as PyTorch's), a floating mask is added to the scores. ``scale`` defaults to
    1/sqrt(head dim)."""
    _check(query, key, value)
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    scores = (query * scale) @ key.transpose(-1, -2)
    if attn_mask is not None:
        if attn_mask.dtype.kind == "b":
            scores = where(attn_mask, scores, float("-inf"))
        else:
            scores = scores + attn_mask
    return scores.softmax(-1) @ value
