"""``interpolate`` (nearest, nearest-exact, linear, bilinear) with PyTorch's arguments, checks and indices.

The source indices and weights of each output position are computed on the host with numpy, in
the precision PyTorch's CPU kernels use (float32 for float32 inputs, float64 for float64), so the
same input elements are picked. Each spatial dim is then resampled on its own with existing
differentiable ops: the input is padded and cut into windows (``unfold``) that each cover the
sources of a block of outputs, and a constant one-hot mask picks each output's source inside its
window (``where`` + ``sum``), so autograd needs no new kernel. Linear modes pick the two
neighbours that way and add them with their weights.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import dtypes as dt
from ..tensor.checks import check_numel, int_arg
from ..tensor.creation import tensor
from ..tensor.errors import ArgumentError, ShapeError
from ..tensor.movement import pad
from ..tensor.tensor import Tensor, where

_OP = "interpolate"
_MODES = ("nearest", "nearest-exact", "linear", "bilinear")
_ALL_TORCH_MODES = _MODES + ("area", "bicubic", "trilinear")


def _per_dim(name: str, value, nd: int, x: Tensor, convert):
    """One value repeated for every spatial dim, or a list/tuple of exactly ``nd`` of them."""
    if isinstance(value, (list, tuple)):
        if len(value) != nd:
            raise ArgumentError(f"{_OP}: {name} {tuple(value)!r} must have one entry per spatial dim of "
                                f"input {x.shape} ({nd})")
        return tuple(convert(v) for v in value)
    return (convert(value),) * nd


def _scale_value(v) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{_OP}: scale_factor must be a float or a tuple of floats, got {v!r}")
    v = float(v)
    if not math.isfinite(v):
        raise ArgumentError(f"{_OP}: scale_factor must be finite, got {v}")
    return v


def _output_sizes(x: Tensor, nd, size, scale_factor, recompute_scale_factor):
    """(output sizes, scales handed to the index computation: None where sizes decide)."""
    if size is not None and scale_factor is not None:
        raise ArgumentError(f"{_OP}: only one of size or scale_factor should be given")
    if size is None and scale_factor is None:
        raise ArgumentError(f"{_OP}: either size or scale_factor should be given")
    if size is not None:
        sizes = _per_dim("size", size, nd, x, lambda v: int_arg(_OP, "size", v))
        if recompute_scale_factor:
            raise ArgumentError(f"{_OP}: recompute_scale_factor is not meaningful with an explicit size")
        return sizes, (None,) * nd
    scales = _per_dim("scale_factor", scale_factor, nd, x, _scale_value)
    out = tuple(int(math.floor(s * n)) for s, n in zip(scales, x.shape[2:]))
    return out, ((None,) * nd if recompute_scale_factor else scales)


def _check_input(x: Tensor, mode: str, align_corners):
    if mode not in _MODES:
        known = ", ".join(_ALL_TORCH_MODES)
        if mode in _ALL_TORCH_MODES:
            raise NotImplementedError(f"{_OP}: mode {mode!r} is not supported (supported: {', '.join(_MODES)})")
        raise NotImplementedError(f"{_OP}: unknown mode {mode!r} (PyTorch's modes: {known})")
    if mode in ("nearest", "nearest-exact") and align_corners is not None:
        raise ArgumentError(f"{_OP}: align_corners can only be set with the linear modes (linear, bilinear), "
                            f"not with mode {mode!r}")
    if mode == "linear" and x.ndim != 3:
        raise NotImplementedError(f"{_OP}: mode 'linear' needs a 3-D input (N, C, L), got shape {x.shape}")
    if mode == "bilinear" and x.ndim != 4:
        raise NotImplementedError(f"{_OP}: mode 'bilinear' needs a 4-D input (N, C, H, W), got shape {x.shape}")
    if x.ndim not in (3, 4):
        raise NotImplementedError(f"{_OP}: expected a 3-D (N, C, L) or 4-D (N, C, H, W) input, got shape {x.shape}")


def interpolate(input: Tensor, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                recompute_scale_factor=None, antialias: bool = False) -> Tensor:
    """Resize the spatial dims of a 3-D (N, C, L) or 4-D (N, C, H, W) input, like PyTorch's
    ``interpolate``: give ``size`` or ``scale_factor``; modes 'nearest', 'nearest-exact', 'linear'
    (3-D) and 'bilinear' (4-D); ``align_corners`` only with the linear modes."""
    x = input
    if not isinstance(x, Tensor):
        raise TypeError(f"{_OP}: input must be a Tensor, got {type(x).__name__}")
    if mode in ("nearest", "nearest-exact", "area") and align_corners is not None:
        _check_input(x, mode, align_corners)  # PyTorch refuses this first, before looking at the sizes
    nd = x.ndim - 2
    sizes, scales = _output_sizes(x, max(nd, 0), size, scale_factor, recompute_scale_factor)
    if antialias:
        if mode == "bilinear" and x.ndim == 4:
            raise NotImplementedError(f"{_OP}: antialias=True is not supported")
        raise ArgumentError(f"{_OP}: antialias=True is only available with mode 'bilinear' on 4-D inputs")
    _check_input(x, mode, align_corners)
    align = bool(align_corners) if mode in ("linear", "bilinear") else False
    if not x.dtype.is_float:
        raise TypeError(f"{_OP}: expected a floating-point input, got {x.dtype.name}")
    if any(s == 0 for s in x.shape[1:]):
        raise ShapeError(f"{_OP}: input of shape {x.shape} has an empty dim (only the batch dim may be 0)")
    if any(o <= 0 for o in sizes):
        raise ArgumentError(f"{_OP}: output sizes must be positive, got {sizes} for input {x.shape} "
                            f"(size={size!r}, scale_factor={scale_factor!r})")
    check_numel(_OP, (*x.shape[:2], *sizes))
    ft = np.float64 if x.dtype is dt.float64 else np.float32
    out = x
    for axis in reversed(range(2, x.ndim)):  # the last dim first, as PyTorch's kernels nest the sums
        n, o, sc = x.shape[axis], sizes[axis - 2], scales[axis - 2]
        if mode in ("nearest", "nearest-exact"):
            if x.ndim == 4:
                idx = _nearest_indices_2d(n, o, sc, mode == "nearest-exact")
            else:
                idx = _nearest_indices(n, o, sc, mode == "nearest-exact", ft)
            out = _resample(out, axis, [(idx, None)])
        else:
            i0, i1, l0, l1 = _linear_indices(n, o, sc, align, ft)
            out = _resample(out, axis, [(i0, l0), (i1, l1)])
    return out


# ---- source indices and weights ------------------------------------------------------------------
def _scale(n_in: int, n_out: int, align: bool, scale_factor, ft):
    """Source step per output step, in the kernel's precision (PyTorch's area_pixel_compute_scale)."""
    if align:
        return ft(n_in - 1) / ft(n_out - 1) if n_out > 1 else ft(0)
    if scale_factor is not None and scale_factor > 0:
        return ft(1.0 / scale_factor)
    return ft(n_in) / ft(n_out)


def _floor_f32(v) -> np.ndarray:
    """floor after rounding to float32 (PyTorch floors source positions with floorf)."""
    return np.floor(np.asarray(v).astype(np.float32)).astype(np.int64)


def _fma(a, b, c, ft):
    """a * b + c rounded once, like the fused multiply-add PyTorch's compiled kernels use here."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if ft is np.float32:  # the float32 product is exact in float64
        return (a * b + c).astype(np.float32)
    p = a * b  # float64: Dekker's exact product p + e, then a compensated sum with c
    ah, bh = (lambda v: v - (v - a))(a * 134217729.0), (lambda v: v - (v - b))(b * 134217729.0)
    e = ((ah * bh - p) + ah * (b - bh) + (a - ah) * bh) + (a - ah) * (b - bh)
    s = p + c
    bb = s - p
    return s + (((p - (s - bb)) + (c - bb)) + e)


def _source(scale, dst, ft):
    """scale * (dst + 0.5) - 0.5 clamped at 0 (PyTorch's half-pixel source position)."""
    return np.maximum(_fma(scale, dst + ft(0.5), -0.5, ft), ft(0))


def _nearest_indices(n_in, n_out, scale_factor, exact, ft):
    scale = _scale(n_in, n_out, False, scale_factor, ft)
    dst = np.arange(n_out).astype(ft)
    if exact:  # floor(src + 0.5) with src = scale * (dst + 0.5) - 0.5 clamped at 0
        idx = _floor_f32(_source(scale, dst, ft).astype(np.float64) + 0.5)
    else:  # floor(dst * scale)
        idx = _floor_f32(dst * scale)
    return np.minimum(idx, n_in - 1)


def _nearest_indices_2d(n_in, n_out, scale_factor, exact):
    """PyTorch's 2-D nearest kernels: a float32 step for every dtype; 'nearest' keeps whole
    copies (out == in) and halves indices (out == 2 * in) exactly; 'nearest-exact' floors
    float32((dst + 0.5) * step), the product taken in float64."""
    scale = _scale(n_in, n_out, False, scale_factor, np.float32)
    if exact:
        idx = _floor_f32((np.arange(n_out) + 0.5) * np.float64(scale))
    elif n_out == n_in:
        idx = np.arange(n_out)
    elif n_out == 2 * n_in:
        idx = np.arange(n_out) // 2
    else:
        idx = _floor_f32(np.arange(n_out).astype(np.float32) * scale)
    return np.minimum(idx, n_in - 1)


def _linear_indices(n_in, n_out, scale_factor, align, ft):
    """Left and right neighbours and their weights; the right one stays the left at the last input."""
    if n_in == n_out and not align:
        i = np.arange(n_out)
        return i, i, np.ones(n_out, ft), np.zeros(n_out, ft)
    scale = _scale(n_in, n_out, align, scale_factor, ft)
    dst = np.arange(n_out).astype(ft)
    src = scale * dst if align else _source(scale, dst, ft)
    i0 = np.minimum(_floor_f32(src), n_in - 1)
    l1 = np.clip(src - i0.astype(ft), ft(0), ft(1)).astype(ft)
    i1 = i0 + (i0 < n_in - 1)
    return i0, i1, (ft(1) - l1).astype(ft), l1


# ---- resampling one dim by windowed one-hot picks --------------------------------------------------
def _candidates(n_in: int, n_out: int):
    """Block sizes (outputs per window) and steps (inputs per window) worth trying: small blocks,
    and blocks whose input span is close to a whole number (continued-fraction approximations)."""
    rate = n_in / n_out
    blocks = set(range(1, min(n_out, 16) + 1))
    for k in range(1, 33):
        blocks.add(max(1, min(n_out, round(k / rate))))
    p0, q0, p1, q1, r = 0, 1, 1, 0, rate  # convergents p/q of rate
    for _ in range(12):
        a = math.floor(r)
        p0, q0, p1, q1 = p1, q1, a * p1 + p0, a * q1 + q0
        if q1 > n_out:
            break
        blocks.add(q1)
        if r == a:
            break
        r = 1 / (r - a)
    for b in blocks:
        for step in {max(1, math.floor(b * rate)), max(1, math.ceil(b * rate))}:
            yield b, step


def _layout(first: np.ndarray, last: np.ndarray, n_in: int):
    """(block, step, left pad, window) covering every output's sources at the least cost."""
    n_out = len(first)
    best = None
    for block, step in _candidates(n_in, n_out):
        nb = -(-n_out // block)
        lo = first[::block]  # indices are non-decreasing: a block's first output reads its lowest source
        hi = last[np.minimum(np.arange(1, nb + 1) * block, n_out) - 1]
        starts = np.arange(nb) * step
        left = max(0, int(np.max(starts - lo)))
        window = int(np.max(hi - (starts - left))) + 1
        cost = nb * block * window + (nb - 1) * step
        if best is None or cost < best[0]:
            best = (cost, block, step, left, window)
    return best[1:]


def _resample(x: Tensor, axis: int, parts) -> Tensor:
    """Sum over ``parts`` of ``x`` picked at indices ``idx`` along ``axis``, times ``weight`` if given."""
    n_in, n_out = x.shape[axis], len(parts[0][0])
    if len(parts) == 1 and n_in == n_out and np.array_equal(parts[0][0], np.arange(n_in)):
        return x
    first = np.minimum.reduce([p[0] for p in parts])
    last = np.maximum.reduce([p[0] for p in parts])
    block, step, left, window = _layout(first, last, n_in)
    nb = -(-n_out // block)
    need = (nb - 1) * step + window
    flat = [0, 0] * (x.ndim - 1 - axis) + [left, need - left - n_in]
    windows = pad(x, flat).unfold(axis, window, step).unsqueeze(axis + 1)  # (.., nb, 1, *rest, window)
    rest = x.ndim - 1 - axis
    starts = np.arange(nb) * step - left
    out = None
    for idx, weight in parts:
        full = np.concatenate([idx, np.full(nb * block - n_out, idx[-1])]).reshape(nb, block)
        mask = (full - starts[:, None])[..., None] == np.arange(window)  # (nb, block, window)
        m = tensor(mask.reshape(nb, block, *([1] * rest), window), device=x.device)
        picked = where(m, windows, 0.0).sum(-1)  # (.., nb, block, *rest)
        picked = picked.reshape(*x.shape[:axis], nb * block, *x.shape[axis + 1:])
        if nb * block != n_out:
            picked = picked[(slice(None),) * axis + (slice(0, n_out),)]
        if weight is not None:
            w = tensor(weight.reshape(n_out, *([1] * rest)), dtype=x.dtype, device=x.device)
            picked = picked * w
        out = picked if out is None else out + picked
    return out


__all__ = ["interpolate"]
