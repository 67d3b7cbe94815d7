"""Convolutions (1-D and 2-D, transposed too) built from views, one matrix product and fold.

- conv: the input is padded, unfolded into sliding windows (a view, no copy), gathered once
  into column form and multiplied by the weight matrix on the BLAS. Small grouped cases
  (depthwise) reduce the windows directly in one fused kernel instead.
- transposed conv: one matrix product turns every input step into a window of outputs, and
  ``fold`` overlap-adds the windows (polyphase for strides: inserted zeros are never
  multiplied).
Gradients come from the same ops' own gradients.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

from ..graph import lazy
from ..graph.library_ops import CONV_ROWS, ROW_SLACK
from ..tensor import pad, stack
from ..tensor.autograd import Function
from ..tensor.checks import check_numel, int_arg, int_tuple, non_negative, positive
from ..tensor.errors import ArgumentError, ShapeError
from ..tensor.movement import fold
from ..tensor.tensor import Tensor

# below this many products per output a plain fused reduction beats the blocked kernel
DIRECT_MAX_TERMS = 32


class ConvRows(Function):
    """``y[n, g*O+o, t] = bias + sum_{c,k} A[g,o,c,k] * X[n, g*C+c, offsets[k] + t]`` (t < T):
    the blocked shifted-row kernel behind 1-D convolutions (``devices.cpu.conv_template``)."""

    def forward(self, a, x, *bias, offsets, length):
        x = lazy.contiguous(x)  # the kernel reads a plain buffer; backward reuses the same one
        self.a, self.x, self.offsets, self.length = a, x, offsets, length
        return lazy.library(CONV_ROWS, (a, x, *bias), a.dtype, (a.shape[0], tuple(offsets), length))

    def backward(self, grad):
        a, x = Tensor._from_node(self.a), Tensor._from_node(self.x)
        g, o, c, k = a.shape
        n, lrow, t = x.shape[0], x.shape[2], self.length
        gg = grad.reshape(n, g, o, t)
        da = dx = None
        if self.needs_grad[1]:
            # dX[c, p] = sum_{o,k} A[o,c,k] * grad[o, p - off_k]: the same kernel with in and out
            # swapped, reading grad padded by the largest offset on both sides
            reach = max(self.offsets)
            rows = pad(grad, (reach, lrow - t + _slack(reach + lrow)))
            dx = ConvRows.apply(a.permute(0, 2, 1, 3), rows, offsets=[reach - off for off in self.offsets],
                                length=lrow)
        if self.needs_grad[0]:
            xr = x.reshape(n, g, c, lrow)
            taps = [(gg @ xr[..., off:off + t].transpose(-1, -2)).sum(0) for off in self.offsets]
            da = stack(taps, 3)
        grads = (da, dx)
        if len(self.needs_grad) > 2:
            grads += (grad.sum((0, 2)) if self.needs_grad[2] else None,)
        return grads


def _slack(length: int) -> int:
    """Spare elements after rows of ``length``: the CPU kernel's vector overrun, rounded up so
    that rows start on 16 bytes (tensor-core GEMMs on the GPU run at half speed otherwise)."""
    return ROW_SLACK + (-(length + ROW_SLACK)) % 4


def _rows_kernel(x: Tensor) -> bool:
    """Whether 1-D convolutions of ``x`` run on the shifted-row library op in its device (the
    blocked C kernel in float32 on the CPU; cuBLAS or tensor cores in float32 and float64 on the GPU)."""
    return x.dtype in x.device.conv_rows_dtypes


def _conv1d_rows(xp: Tensor, weight: Tensor, bias, stride: int, dilation: int, groups: int) -> Tensor:
    """A 1-D convolution of the padded input ``xp`` by the blocked kernel (float32)."""
    n, cin, lp = xp.shape
    cout, cin_g, k = weight.shape
    out_len = (lp - dilation * (k - 1) - 1) // stride + 1
    if stride == 1:
        rows, offsets = xp, [j * dilation for j in range(k)]
    else:  # phases: row p holds xp[p::stride], so every tap reads a contiguous run again
        lph = -(-lp // stride)
        rows = pad(xp, (0, lph * stride - lp)).reshape(n, cin, lph, stride).permute(0, 1, 3, 2)
        rows = rows.reshape(n, cin, stride * lph)
        offsets = [((j * dilation) % stride) * lph + (j * dilation) // stride for j in range(k)]
    rows = pad(rows, (0, _slack(rows.shape[2])))
    a = weight.reshape(groups, cout // groups, cin_g, k)
    extra = (bias,) if bias is not None else ()
    return ConvRows.apply(a, rows, *extra, offsets=offsets, length=out_len)


def _batched(x: Tensor, nd: int, op: str) -> Tuple[Tensor, bool]:
    if x.ndim == nd + 1:
        x, unbatched = x.unsqueeze(0), True
    elif x.ndim == nd + 2:
        unbatched = False
    else:
        raise ShapeError(f"{op}: expected a {nd + 2}-D (batched) or {nd + 1}-D input, got shape {x.shape}")
    if any(s == 0 for s in x.shape[2:]):
        # PyTorch's rule: only the batch and channel dims may be empty
        raise ShapeError(f"{op}: input of shape {x.shape} has an empty spatial dim (only the batch and "
                         f"channel dims may be 0)")
    return x, unbatched


def _padding(padding, kernel, dilation, stride, nd: int, op: str):
    if padding == "valid":
        return [(0, 0)] * nd
    if padding == "same":
        if any(s != 1 for s in stride):
            raise ArgumentError(f"{op}: padding='same' is not supported for strided convolutions")
        pairs = []
        for k, d in zip(kernel, dilation):
            total = d * (k - 1)
            pairs.append((total // 2, total - total // 2))
        return pairs
    if isinstance(padding, str):
        raise ArgumentError(f"{op}: padding must be 'valid', 'same', an int or a tuple, got {padding!r}")
    pads = int_tuple(op, "padding", padding, nd)
    non_negative(op, "padding", pads)
    return [(p, p) for p in pads]


def _common_args(op: str, x: Tensor, weight: Tensor, bias, stride, dilation, groups, nd: int, cout: int):
    """Checks shared by convolutions and transposed ones; returns (stride, dilation, groups, kernel)."""
    if weight.ndim != nd + 2:
        raise ShapeError(f"{op}: weight must be {nd + 2}-D, got shape {weight.shape}")
    groups = int_arg(op, "groups", groups)
    positive(op, "groups", (groups,))
    stride = int_tuple(op, "stride", stride, nd)
    positive(op, "stride", stride)
    dilation = int_tuple(op, "dilation", dilation, nd)
    positive(op, "dilation", dilation)
    kernel = tuple(weight.shape[2:])
    if any(k <= 0 for k in kernel):
        raise ShapeError(f"{op}: kernel size must be positive, got weight of shape {weight.shape}")
    if bias is not None and tuple(bias.shape) != (cout,):
        raise ShapeError(f"{op}: bias must be 1-D with {cout} elements (the output channels), "
                         f"got shape {bias.shape}")
    return stride, dilation, groups, kernel


def conv_nd(x: Tensor, weight: Tensor, bias: Optional[Tensor], stride, padding, dilation, groups: int,
            nd: int) -> Tensor:
    op = f"conv{nd}d"
    x, unbatched = _batched(x, nd, op)
    cout = weight.shape[0] if weight.ndim else 0
    stride, dilation, groups, kernel = _common_args(op, x, weight, bias, stride, dilation, groups, nd, cout)
    n, cin = x.shape[:2]
    cin_g = weight.shape[1]
    if cout < groups or cin_g * groups != cin or cout % groups:
        raise ShapeError(f"{op}: input {x.shape} and weight {weight.shape} do not fit groups={groups} "
                         f"(input channels {cin} must be {cin_g}*{groups}; output channels a positive "
                         f"multiple of groups)")
    pairs = _padding(padding, kernel, dilation, stride, nd, op)
    padded = [s + lo + hi for s, (lo, hi) in zip(x.shape[2:], pairs)]
    check_numel(op, (n, cin, *padded))
    for i in range(nd):
        span = dilation[i] * (kernel[i] - 1) + 1
        if padded[i] < span:
            raise ShapeError(f"{op}: padded input size {padded[i]} is smaller than the kernel span {span} "
                             f"(input {x.shape}, weight {weight.shape})")
    out_sp = [(p - d * (k - 1) - 1) // s + 1 for p, d, k, s in zip(padded, dilation, kernel, stride)]
    check_numel(op, (n, cout, *out_sp))
    check_numel(op, (n, cin, *kernel, *out_sp))  # the gathered windows
    flat_pad = [v for pr in reversed(pairs) for v in pr]
    xp = pad(x, flat_pad) if any(flat_pad) else x
    win = xp
    for i in range(nd):
        win = win.unfold(2 + i, kernel[i], stride[i], dilation[i])
    out_sp = win.shape[2:2 + nd]
    g, cout_g, taps = groups, cout // groups, math.prod(kernel)
    win = win.reshape(n, g, cin_g, *out_sp, *kernel)
    if nd == 1 and _rows_kernel(x) and cin_g * taps > DIRECT_MAX_TERMS:
        y = _conv1d_rows(xp, weight, bias, stride[0], dilation[0], groups)
        return y.squeeze(0) if unbatched else y
    if cin_g * taps <= DIRECT_MAX_TERMS:
        # (n, g, 1, cin_g, *out, *k) * (1, g, cout_g, cin_g, 1.., *k) summed over cin_g and k
        w = weight.reshape(1, g, cout_g, cin_g, *([1] * nd), *kernel)
        prod = win.unsqueeze(2) * w
        y = prod.sum((3,) + tuple(range(4 + nd, 4 + 2 * nd)))
    else:
        order = (0, 1, 2) + tuple(range(3 + nd, 3 + 2 * nd)) + tuple(range(3, 3 + nd))
        cols = win.permute(*order).reshape(n, g, cin_g * taps, math.prod(out_sp))
        y = weight.reshape(g, cout_g, cin_g * taps) @ cols
    y = y.reshape(n, cout, *out_sp)
    if bias is not None:
        y = y + bias.reshape(1, cout, *([1] * nd))
    return y.squeeze(0) if unbatched else y


def conv_transpose_nd(x: Tensor, weight: Tensor, bias: Optional[Tensor], stride, padding, output_padding,
                      groups: int, dilation, nd: int) -> Tensor:
    op = f"conv_transpose{nd}d"
    x, unbatched = _batched(x, nd, op)
    cout = weight.shape[1] * groups if weight.ndim > 1 and isinstance(groups, int) else -1
    stride, dilation, groups, kernel = _common_args(op, x, weight, bias, stride, dilation, groups, nd, cout)
    n, cin = x.shape[:2]
    cout_g = weight.shape[1]
    if weight.shape[0] != cin or cin < groups or cin % groups or cout_g == 0:
        raise ShapeError(f"{op}: input {x.shape} and weight {weight.shape} do not fit groups={groups} "
                         f"(weight dim 0 must equal the input channels {cin}, a positive multiple of groups; "
                         f"weight dim 1 must be positive)")
    pads = int_tuple(op, "padding", padding, nd)
    non_negative(op, "padding", pads)
    out_pad = int_tuple(op, "output_padding", output_padding, nd)
    non_negative(op, "output_padding", out_pad)
    for o, s, d in zip(out_pad, stride, dilation):
        if o >= max(s, d):
            raise ArgumentError(f"{op}: output_padding {output_padding} must be smaller than either stride "
                                f"{stride} or dilation {dilation}")
    in_sp = x.shape[2:]
    out_sp = [(i - 1) * s - 2 * p + d * (k - 1) + o + 1
              for i, s, p, d, k, o in zip(in_sp, stride, pads, dilation, kernel, out_pad)]
    # PyTorch gives an empty output for an output size of 0 with groups, and refuses it without
    if any(o < 0 for o in out_sp) or (groups == 1 and any(o == 0 for o in out_sp)):
        raise ShapeError(f"{op}: input {x.shape} with weight {weight.shape} gives an output size below 1 "
                         f"{tuple(out_sp)}")
    full = [(i - 1) * s + d * (k - 1) + 1 for i, s, d, k in zip(in_sp, stride, dilation, kernel)]
    check_numel(op, (n, cout_g * groups, *out_sp))
    check_numel(op, (n, cout_g * groups, *full))
    g, cin_g, taps = groups, cin // groups, math.prod(kernel)
    # every input step becomes a window of outputs: (cout_g*taps, cin_g) @ (cin_g, steps) per group
    wm = weight.reshape(g, cin_g, cout_g * taps).transpose(1, 2)
    if nd == 1 and _rows_kernel(x):  # the rows kernel reads W once, in place
        rows = pad(x, (0, _slack(x.shape[2])))
        cols = ConvRows.apply(wm.unsqueeze(-1), rows, offsets=[0], length=in_sp[0])
    else:
        cols = wm @ x.reshape(n, g, cin_g, math.prod(in_sp))
    cols = cols.reshape(n, g * cout_g, *kernel, *in_sp)
    order = (0, 1) + tuple(range(2 + nd, 2 + 2 * nd)) + tuple(range(2, 2 + nd))
    y = cols.permute(*order)                     # (n, cout, *in, *k)
    for i in reversed(range(nd)):
        full = (in_sp[i] - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1
        y = fold(y, 2 + i, full, stride[i], dilation[i])
    bounds = [(0, s) for s in y.shape]
    crop = []
    for i in range(nd):
        lo, want = pads[i], out_sp[i]
        have = y.shape[2 + i] - lo
        crop.append((lo, lo + min(want, have)))
        bounds[2 + i] = crop[-1]
    y = y._shrink(tuple(bounds))
    extra = [(0, 0), (0, 0)] + [(0, want - (hi - lo)) for (lo, hi), want in zip(crop, out_sp)]
    y = y._pad(tuple(extra))
    if bias is not None:
        y = y + bias.reshape(1, g * cout_g, *([1] * nd))
    return y.squeeze(0) if unbatched else y


def conv1d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride=1,
           padding: Union[int, str, Sequence[int]] = 0, dilation=1, groups: int = 1) -> Tensor:
    """1-D convolution (cross-correlation) with PyTorch's arguments."""
    return conv_nd(input, weight, bias, stride, padding, dilation, groups, 1)


def conv2d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride=1,
           padding: Union[int, str, Sequence[int]] = 0, dilation=1, groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation) with PyTorch's arguments."""
    return conv_nd(input, weight, bias, stride, padding, dilation, groups, 2)


def conv_transpose1d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """1-D transposed convolution with PyTorch's arguments (weight is (in, out/groups, k))."""
    return conv_transpose_nd(input, weight, bias, stride, padding, output_padding, groups, dilation, 1)


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """2-D transposed convolution with PyTorch's arguments (weight is (in, out/groups, kh, kw))."""
    return conv_transpose_nd(input, weight, bias, stride, padding, output_padding, groups, dilation, 2)
