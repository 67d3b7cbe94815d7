"""Functional forms of layers and activations, with PyTorch's names, arguments and defaults."""
from __future__ import annotations

import math
from typing import Optional

from ..tensor import pad, where
from ..tensor.creation import rand
from ..tensor.tensor import Tensor
from .attention import scaled_dot_product_attention
from .conv import conv1d, conv2d, conv_transpose1d, conv_transpose2d
from .interpolate import interpolate
from .pooling import avg_pool1d, avg_pool2d, max_pool1d, max_pool2d


# ---- activations -------------------------------------------------------------------------------
def relu(x: Tensor) -> Tensor:
    return x.relu()


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    return where(x > 0, x, x * negative_slope)


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    # exp only sees x <= 0, so the branch not taken cannot overflow into a nan gradient
    neg = where(x > 0, 0.0, x)
    return where(x > 0, x, (neg.exp() - 1) * alpha)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit; ``approximate='tanh'`` uses PyTorch's tanh formula."""
    if approximate == "none":
        return x * 0.5 * (1 + (x * (1 / math.sqrt(2))).erf())
    if approximate == "tanh":
        inner = (x + x * x * x * 0.044715) * math.sqrt(2 / math.pi)
        return x * 0.5 * (1 + inner.tanh())
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def silu(x: Tensor) -> Tensor:
    return x * x.sigmoid()


def sigmoid(x: Tensor) -> Tensor:
    return x.sigmoid()


def tanh(x: Tensor) -> Tensor:
    return x.tanh()


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    return x.softplus(beta, threshold)


def softmax(x: Tensor, dim: int) -> Tensor:
    return x.softmax(dim)


def log_softmax(x: Tensor, dim: int) -> Tensor:
    return x.log_softmax(dim)


def _per_channel(p: Tensor, ndim: int) -> Tensor:
    """Reshape a per-channel parameter ([C] or [1, C, 1]) to broadcast over (N, C, *)."""
    return p.reshape(1, -1, *([1] * (ndim - 2)))


def snake(x: Tensor, alpha: Tensor, eps: float = 1e-9) -> Tensor:
    """DAC's one-parameter Snake: x + 1/(alpha + eps) * sin(alpha * x)^2 (alpha linear, per channel)."""
    a = _per_channel(alpha, x.ndim)
    s = (x * a).sin()
    return x + (a + eps).reciprocal() * (s * s)


def snake_beta(x: Tensor, alpha: Tensor, beta: Tensor, alpha_logscale: bool = True, eps: float = 1e-9) -> Tensor:
    """SnakeBeta: x + 1/(beta + eps) * sin(alpha * x)^2; with ``alpha_logscale`` the stored
    parameters are logs and exp(alpha), exp(beta) are used (eps is added after the exp)."""
    a, b = _per_channel(alpha, x.ndim), _per_channel(beta, x.ndim)
    if alpha_logscale:
        a, b = a.exp(), b.exp()
    s = (x * a).sin()
    return x + (b + eps).reciprocal() * (s * s)


# ---- linear, dropout, normalization -------------------------------------------------------------
def linear(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """x @ weight.T + bias, weight shaped (out_features, in_features)."""
    y = x @ weight.transpose(0, 1) if weight.ndim == 2 else x @ weight
    return y + bias if bias is not None else y


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p) (only in training)."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: probability must be in [0, 1], got {p}")
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0
    keep = rand(*x.shape, dtype=x.dtype, device=x.device) >= p
    return where(keep, x * (1 / (1 - p)), 0.0)


def layer_norm(x: Tensor, normalized_shape, weight: Optional[Tensor] = None, bias: Optional[Tensor] = None,
               eps: float = 1e-5) -> Tensor:
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(x.shape[-len(shape):]) != shape:
        from ..tensor.errors import ShapeError
        raise ShapeError(f"layer_norm: normalized_shape {shape} does not match the last dims of input {x.shape}")
    dims = tuple(range(x.ndim - len(shape), x.ndim))
    mean = x.mean(dims, keepdim=True)
    var = x.var(dims, keepdim=True, correction=0)
    y = (x - mean) * (var + eps).rsqrt()
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def group_norm(x: Tensor, num_groups: int, weight: Optional[Tensor] = None, bias: Optional[Tensor] = None,
               eps: float = 1e-5) -> Tensor:
    n, c = x.shape[0], x.shape[1]
    if c % num_groups:
        from ..tensor.errors import ShapeError
        raise ShapeError(f"group_norm: {c} channels are not divisible into {num_groups} groups")
    g = x.reshape(n, num_groups, -1)
    mean = g.mean(-1, keepdim=True)
    var = g.var(-1, keepdim=True, correction=0)
    y = ((g - mean) * (var + eps).rsqrt()).reshape(*x.shape)
    if weight is not None:
        y = y * _per_channel(weight, x.ndim)
    if bias is not None:
        y = y + _per_channel(bias, x.ndim)
    return y


__all__ = ["pad", "relu", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh", "softplus", "softmax",
           "log_softmax", "snake", "snake_beta", "linear", "dropout", "layer_norm", "group_norm", "conv1d",
           "conv2d", "conv_transpose1d", "conv_transpose2d", "max_pool1d", "max_pool2d", "avg_pool1d",
           "avg_pool2d", "interpolate", "scaled_dot_product_attention"]
