"""Max and average pooling over sliding windows (unfold views reduced in one kernel)."""
from __future__ import annotations


from ..tensor import pad
from ..tensor.errors import ShapeError
from ..tensor.tensor import Tensor


def _tuple(v, n):
    return (v,) * n if isinstance(v, int) else tuple(v)


def _out_size(size, k, s, p, d, ceil_mode):
    span = d * (k - 1) + 1
    num = size + 2 * p - span
    out = (-(-num // s) if ceil_mode else num // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:  # the last window must start inside the input
        out -= 1
    return out


def _windows(x: Tensor, nd, kernel_size, stride, padding, dilation, ceil_mode, fill, op):
    kernel = _tuple(kernel_size, nd)
    stride = _tuple(stride if stride is not None else kernel, nd)
    padding, dilation = _tuple(padding, nd), _tuple(dilation, nd)
    if x.ndim not in (nd + 1, nd + 2):
        raise ShapeError(f"{op}: expected a {nd + 1}-D or {nd + 2}-D input, got shape {x.shape}")
    if any(2 * p > k for p, k in zip(padding, kernel)):
        raise ValueError(f"{op}: padding {padding} must be at most half the kernel size {kernel}")
    sizes = x.shape[-nd:]
    outs = [_out_size(sz, k, s, p, d, ceil_mode) for sz, k, s, p, d in zip(sizes, kernel, stride, padding, dilation)]
    if any(o <= 0 for o in outs):
        raise ShapeError(f"{op}: input {x.shape} is too small for kernel {kernel}")
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
    return _max_pool(input, 1, kernel_size, stride, padding, dilation, ceil_mode, "max_pool1d")


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False) -> Tensor:
    return _max_pool(input, 2, kernel_size, stride, padding, dilation, ceil_mode, "max_pool2d")


def avg_pool1d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True) -> Tensor:
    return _avg_pool(input, 1, kernel_size, stride, padding, ceil_mode, count_include_pad, "avg_pool1d")


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True) -> Tensor:
    return _avg_pool(input, 2, kernel_size, stride, padding, ceil_mode, count_include_pad, "avg_pool2d")
