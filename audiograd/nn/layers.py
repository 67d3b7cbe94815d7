"""Layers as Modules, with PyTorch's constructor arguments, parameter names and init."""
from __future__ import annotations

import math
from typing import Optional

from ..tensor.checks import int_arg, int_tuple, non_negative, positive
from ..tensor.creation import ones, rand, zeros
from ..tensor.errors import ArgumentError
from ..tensor.tensor import Tensor
from . import functional as F
from .module import Module, Parameter


def _uniform(shape, bound: float) -> Parameter:
    return Parameter((rand(*shape) * (2 * bound) - bound).realize())


class Linear(Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1 / math.sqrt(in_features) if in_features else 0.0
        self.weight = _uniform((out_features, in_features), bound)
        self.register_parameter("bias", _uniform((out_features,), bound) if bias else None)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class _ConvNd(Module):
    transposed = False
    nd = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, output_padding=0):
        super().__init__()
        name, nd = type(self).__name__, self.nd
        in_channels, out_channels = (int_arg(name, n, v) for n, v in
                                     (("in_channels", in_channels), ("out_channels", out_channels)))
        non_negative(name, "channels", (in_channels, out_channels))
        groups = int_arg(name, "groups", groups)
        positive(name, "groups", (groups,))
        if in_channels % groups or out_channels % groups:
            raise ArgumentError(f"{name}: in_channels {in_channels} and out_channels {out_channels} "
                                f"must be divisible by groups {groups}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride, self.dilation = (int_tuple(name, n, v, nd) for n, v in
                                                        (("kernel_size", kernel_size), ("stride", stride),
                                                         ("dilation", dilation)))
        for n, v in (("kernel_size", self.kernel_size), ("stride", self.stride), ("dilation", self.dilation)):
            positive(name, n, v)
        if isinstance(padding, str):
            if padding not in ("same", "valid") or self.transposed:
                raise ArgumentError(f"{name}: padding must be 'valid', 'same' (not for transposed convolutions), "
                                    f"an int or a tuple, got {padding!r}")
            if padding == "same" and any(st != 1 for st in self.stride):
                raise ArgumentError(f"{name}: padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = int_tuple(name, "padding", padding, nd)
            non_negative(name, "padding", self.padding)
        self.output_padding = int_tuple(name, "output_padding", output_padding, nd)
        non_negative(name, "output_padding", self.output_padding)
        if self.transposed:
            shape = (in_channels, out_channels // groups, *self.kernel_size)
        else:
            shape = (out_channels, in_channels // groups, *self.kernel_size)
        fan_in = shape[1] * math.prod(self.kernel_size)
        bound = 1 / math.sqrt(fan_in) if fan_in else 0.0
        self.weight = _uniform(shape, bound)
        self.register_parameter("bias", _uniform((out_channels,), bound) if bias else None)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}")


class Conv1d(_ConvNd):
    def forward(self, x: Tensor) -> Tensor:
        return F.conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Conv2d(_ConvNd):
    nd = 2

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ConvTranspose1d(_ConvNd):
    transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 groups=1, bias=True, dilation=1):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         output_padding)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv_transpose1d(x, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                                  self.groups, self.dilation)


class ConvTranspose2d(ConvTranspose1d):
    nd = 2

    def forward(self, x: Tensor) -> Tensor:
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                                  self.groups, self.dilation)


class Dropout(Module):
    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"Dropout: probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)


class LayerNorm(Module):
    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.register_parameter("weight", Parameter(ones(*self.normalized_shape)) if elementwise_affine else None)
        self.register_parameter("bias", Parameter(zeros(*self.normalized_shape))
                                if elementwise_affine and bias else None)

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


class GroupNorm(Module):
    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True):
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels {num_channels} must be divisible by num_groups {num_groups}")
        self.num_groups, self.num_channels, self.eps = num_groups, num_channels, eps
        self.register_parameter("weight", Parameter(ones(num_channels)) if affine else None)
        self.register_parameter("bias", Parameter(zeros(num_channels)) if affine else None)

    def forward(self, x: Tensor) -> Tensor:
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)


class Snake(Module):
    """DAC's Snake1d: one linear per-channel parameter ``alpha`` stored as (1, C, 1), init 1."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = Parameter(ones(1, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return F.snake(x, self.alpha)


class SnakeBeta(Module):
    """stable-audio-tools' SnakeBeta: per-channel ``alpha`` and ``beta`` of shape [C], stored as
    logs (init 0) with ``alpha_logscale`` (the default), else linear (init 1)."""

    def __init__(self, in_features: int, alpha: float = 1.0, alpha_trainable: bool = True,
                 alpha_logscale: bool = True):
        super().__init__()
        self.alpha_logscale = alpha_logscale
        init = (lambda: zeros(in_features) * alpha) if alpha_logscale else (lambda: ones(in_features) * alpha)
        self.alpha = Parameter(init(), requires_grad=alpha_trainable)
        self.beta = Parameter(init(), requires_grad=alpha_trainable)  # a buffer of its own

    def forward(self, x: Tensor) -> Tensor:
        return F.snake_beta(x, self.alpha, self.beta, self.alpha_logscale)


class Identity(Module):
    def forward(self, x):
        return x


class ReLU(Module):
    def forward(self, x):
        return F.relu(x)


class Sigmoid(Module):
    def forward(self, x):
        return F.sigmoid(x)


class Tanh(Module):
    def forward(self, x):
        return F.tanh(x)


class SiLU(Module):
    def forward(self, x):
        return F.silu(x)


class LeakyReLU(Module):
    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)


class ELU(Module):
    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = alpha

    def forward(self, x):
        return F.elu(x, self.alpha)


class GELU(Module):
    def __init__(self, approximate: str = "none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, self.approximate)


class Softmax(Module):
    def __init__(self, dim: Optional[int] = None):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.softmax(x, self.dim if self.dim is not None else -1)


class _Pool(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, count_include_pad=True):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.ceil_mode, self.count_include_pad = dilation, ceil_mode, count_include_pad


class MaxPool1d(_Pool):
    def forward(self, x):
        return F.max_pool1d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)


class MaxPool2d(_Pool):
    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)


class AvgPool1d(_Pool):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__(kernel_size, stride, padding, 1, ceil_mode, count_include_pad)

    def forward(self, x):
        return F.avg_pool1d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)


class AvgPool2d(AvgPool1d):
    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)


class Upsample(Module):
    """Module form of ``interpolate`` with PyTorch's ``nn.Upsample`` arguments."""

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        self.size, self.mode, self.align_corners = size, mode, align_corners
        self.recompute_scale_factor = recompute_scale_factor
        if isinstance(scale_factor, (tuple, list)):
            self.scale_factor = tuple(float(f) for f in scale_factor)
        else:
            self.scale_factor = float(scale_factor) if scale_factor else None

    def forward(self, x):
        return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners,
                             recompute_scale_factor=self.recompute_scale_factor)

    def extra_repr(self) -> str:
        what = f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None else f"size={self.size!r}"
        return f"{what}, mode={self.mode!r}"
