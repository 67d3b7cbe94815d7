"""Max and average pooling over sliding windows (unfold views reduced in one kernel)."""
from __future__ import annotations

from ..tensor import pad
from ..tensor.checks import check_numel, int_tuple, non_negative, positive
from ..tensor.errors import ArgumentError, ShapeError
from ..tensor.tensor import Tensor


def _out_size(size, k, s, p, d, ceil_mode):
    span = d * (k - 1) + 1
    num = size + 2 * p - span
    out = (-(-num // s) if ceil_mode else num // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:  # the last window must start inside the input
        out -= 1
    return out


def _pool_args(x: Tensor, nd, kernel_size, stride, padding, dilation, op):
    """PyTorch's checks of a pooling call: the argument values, then the input's shape."""
    kernel = int_tuple(op, "kernel_size", kernel_size, nd)
    positive(op, "kernel_size", kernel)
    # PyTorch takes a missing (or empty) stride to mean the kernel size
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and not stride) else \
        int_tuple(op, "stride", stride, nd)
    positive(op, "stride", stride)
    padding = int_tuple(op, "padding", padding, nd)
    non_negative(op, "padding", padding)
    dilation = int_tuple(op, "dilation", dilation, nd)
    positive(op, "dilation", dilation)
    if any(2 * p > k for p, k in zip(padding, kernel)):
        raise ArgumentError(f"{op}: padding {padding} must be at most half the kernel size {kernel}")
    if x.ndim not in (nd + 1, nd + 2):
        raise ShapeError(f"{op}: expected a {nd + 1}-D or {nd + 2}-D input, got shape {x.shape}")
    if any(s == 0 for s in x.shape[x.ndim - nd - 1:]):
        raise ShapeError(f"{op}: input of shape {x.shape} has an empty dim (only the batch dim may be 0)")
    return kernel, stride, padding, dilation


def _windows(x: Tensor, nd, kernel_size, stride, padding, dilation, ceil_mode, fill, op):
    kernel, stride, padding, dilation = _pool_args(x, nd, kernel_size, stride, padding, dilation, op)
    sizes = x.shape[-nd:]
    check_numel(op, (*x.shape[:-nd], *(s + 2 * p for s, p in zip(sizes, padding))))
    outs = [_out_size(sz, k, s, p, d, ceil_mode) for sz, k, s, p, d in zip(sizes, kernel, stride, padding, dilation)]
    if any(o <= 0 for o in outs):
        raise ShapeError(f"{op}: input {x.shape} is too small for kernel {kernel} (dilation {dilation}, "
                         f"padding {padding}): output size {tuple(outs)}")
    check_numel(op, (*x.shape[:-nd], *outs, *kernel))
    flat = []
    for i in reversed(range(nd)):
        need = (outs[i] - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1
        flat += [padding[i], max(0, need - sizes[i] - padding[i])]
    xp = pad(x, flat, value=fill) if any(flat) else x
    for i in range(nd):
        xp = xp.unfold(x.ndim - nd + i, kernel[i], stride[i], dilation[i])
    return xp, kernel, stride, padding, outs


def _max_pool(x, nd, kernel_size, stride, padding, dilation, ceil_mode, op):
    w, *_ = _windows(x, nd, kernel_size, stride, padding, dilation, ceil_mode, float("-inf"), op)
    return w.amax(tuple(range(w.ndim - nd, w.ndim)))


def _avg_pool(x, nd, kernel_size, stride, padding, ceil_mode, count_include_pad, op):
    w, kernel, stride_, padding_, outs = _windows(x, nd, kernel_size, stride, padding, 1, ceil_mode, 0.0, op)
    total = w.sum(tuple(range(w.ndim - nd, w.ndim)))
    # divisor per output: window size clipped to the padded input (and to the input without padding)
    from ..tensor.creation import ones
    sizes = x.shape[-nd:]
    lead = [1] * (x.ndim - nd)
    pad_to = sizes if not count_include_pad else [s + 2 * p for s, p in zip(sizes, padding_)]
    one = ones(*lead, *sizes, dtype=x.dtype)
    cw, *_ = _windows(one, nd, kernel_size, stride, padding, 1, ceil_mode, 0.0, op)
    if count_include_pad:
        # padded positions count, positions beyond the padding (ceil_mode overhang) do not
        inside = ones(*lead, *pad_to, dtype=x.dtype)
        flat = []
        for i in reversed(range(nd)):
            need = (outs[i] - 1) * stride_[i] + kernel[i]
            flat += [0, max(0, need - pad_to[i])]
        inside = pad(inside, flat) if any(flat) else inside
        for i in range(nd):
            inside = inside.unfold(len(lead) + i, kernel[i], stride_[i])
        cw = inside
    count = cw.sum(tuple(range(cw.ndim - nd, cw.ndim)))
    return total / count


def max_pool1d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False) -> Tensor:
    """Largest value of each 1-D window, with PyTorch's arguments and argument checks."""
    return _max_pool(input, 1, kernel_size, stride, padding, dilation, ceil_mode, "max_pool1d")


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False) -> Tensor:
    """Largest value of each 2-D window, with PyTorch's arguments and argument checks."""
    return _max_pool(input, 2, kernel_size, stride, padding, dilation, ceil_mode, "max_pool2d")


def avg_pool1d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True) -> Tensor:
    """Mean of each 1-D window, with PyTorch's arguments and argument checks."""
    return _avg_pool(input, 1, kernel_size, stride, padding, ceil_mode, count_include_pad, "avg_pool1d")


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True) -> Tensor:
    """Mean of each 2-D window, with PyTorch's arguments and argument checks."""
    return _avg_pool(input, 2, kernel_size, stride, padding, ceil_mode, count_include_pad, "avg_pool2d")
