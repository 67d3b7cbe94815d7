"""Shape and layout ops: all free (views) until a kernel reads them."""
from __future__ import annotations

import math
from typing import Sequence

from .checks import check_numel, int_arg
from .errors import ArgumentError, ShapeError, broadcast_shapes, normalize_dim
from . import functions as F


def _shape_arg(args):
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(args)


class MovementMixin:
    def reshape(self, *shape):
        shape = tuple(int_arg("reshape", "size", s) for s in _shape_arg(shape))
        n = self.numel()
        if shape.count(-1) > 1:
            raise ShapeError(f"reshape: only one dimension can be -1, got {shape}")
        if -1 in shape:
            rest = math.prod(s for s in shape if s != -1)
            if rest == 0 or n % rest:
                raise ShapeError(f"reshape: shape {shape} is invalid for input of shape {self.shape}")
            shape = tuple(n // rest if s == -1 else s for s in shape)
        if any(s < 0 for s in shape) or math.prod(shape) != n:
            raise ShapeError(f"reshape: shape {shape} is invalid for input of shape {self.shape} ({n} elements)")
        if shape == self.shape:
            return self
        return F.Reshape.apply(self, shape=shape)

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        if self.ndim == 0:
            return self.reshape(1)
        s = normalize_dim("flatten", start_dim, self.ndim)
        e = normalize_dim("flatten", end_dim, self.ndim)
        return self.reshape(*self.shape[:s], math.prod(self.shape[s:e + 1]), *self.shape[e + 1:])

    def permute(self, *dims):
        dims = _shape_arg(dims)
        order = tuple(normalize_dim("permute", d, self.ndim) for d in dims)
        if sorted(order) != list(range(self.ndim)):
            raise ShapeError(f"permute: {dims} is not a permutation of the dims of shape {self.shape}")
        if order == tuple(range(self.ndim)):
            return self
        return F.Permute.apply(self, order=order)

    def transpose(self, dim0: int, dim1: int):
        order = list(range(self.ndim))
        a, b = normalize_dim("transpose", dim0, self.ndim), normalize_dim("transpose", dim1, self.ndim)
        order[a], order[b] = order[b], order[a]
        return self.permute(*order)

    @property
    def T(self):
        return self.permute(*reversed(range(self.ndim)))

    @property
    def mT(self):
        return self.transpose(-2, -1)

    def expand(self, *sizes):
        sizes = tuple(int_arg("expand", "size", s) for s in _shape_arg(sizes))
        if len(sizes) < self.ndim:
            raise ShapeError(f"expand: cannot expand shape {self.shape} to {sizes} (fewer dims)")
        lead = len(sizes) - self.ndim
        shape = tuple(s if s != -1 else (self.shape[i - lead] if i >= lead else -1) for i, s in enumerate(sizes))
        for i, s in enumerate(self.shape):
            if s != 1 and shape[lead + i] != s:
                raise ShapeError(f"expand: cannot expand shape {self.shape} to {sizes}")
        if any(s < 0 for s in shape):
            raise ShapeError(f"expand: invalid size in {sizes} (-1 only keeps an existing dim; sizes are "
                             f"non-negative)")
        check_numel("expand", shape)
        x = self.reshape((1,) * lead + self.shape) if lead else self
        if shape == x.shape:
            return x
        return F.Expand.apply(x, shape=shape)

    def expand_as(self, other):
        return self.expand(*other.shape)

    def broadcast_to(self, shape):
        return self.expand(*broadcast_shapes("broadcast_to", self.shape, tuple(shape)))

    def squeeze(self, dim=None):
        if dim is None:
            return self.reshape(*[s for s in self.shape if s != 1])
        dims = dim if isinstance(dim, (tuple, list)) else (dim,)
        dims = {normalize_dim("squeeze", d, self.ndim) for d in dims}
        return self.reshape(*[s for i, s in enumerate(self.shape) if not (i in dims and s == 1)])

    def unsqueeze(self, dim: int):
        d = normalize_dim("unsqueeze", dim, self.ndim + 1)
        return self.reshape(*self.shape[:d], 1, *self.shape[d:])

    def flip(self, dims):
        dims = dims if isinstance(dims, (tuple, list)) else (dims,)
        ds = {normalize_dim("flip", d, self.ndim) for d in dims}
        return self._flip(tuple(i in ds for i in range(self.ndim)))

    def _flip(self, flags):
        return F.Flip.apply(self, flags=tuple(flags)) if any(flags) else self

    def _pad(self, pads):
        """Zero padding, one (before, after) pair of non-negative ints per dim."""
        return F.Pad.apply(self, pads=tuple(pads)) if any(b or a for b, a in pads) else self

    def _shrink(self, bounds):
        if all(lo == 0 and hi == s for (lo, hi), s in zip(bounds, self.shape)):
            return self
        return F.Shrink.apply(self, bounds=tuple(bounds))

    def _step(self, steps):
        return F.Step.apply(self, steps=tuple(steps)) if any(k != 1 for k in steps) else self

    def repeat(self, *sizes):
        sizes = tuple(int_arg("repeat", "repeats", s) for s in _shape_arg(sizes))
        if len(sizes) < self.ndim:
            raise ShapeError(f"repeat: {len(sizes)} repeat counts for a tensor of {self.ndim} dims")
        if any(r < 0 for r in sizes):
            raise ArgumentError(f"repeat: repeat counts must be non-negative, got {sizes}")
        x = self.reshape((1,) * (len(sizes) - self.ndim) + self.shape)
        # each dim s becomes a pair (r, s) by expand, then the pair is merged
        x2 = x.reshape(*[v for s in x.shape for v in (1, s)])
        x2 = x2.expand(*[v for r, s in zip(sizes, x.shape) for v in (r, s)])
        return x2.reshape(*[r * s for r, s in zip(sizes, x.shape)])

    def unfold(self, dimension: int, size: int, step: int, dilation: int = 1):
        """Windows of ``size`` elements every ``step`` along ``dimension``, as a new last dim
        (``torch.Tensor.unfold``; ``dilation`` spaces the elements inside a window)."""
        d = normalize_dim("unfold", dimension, self.ndim)
        size, step, dilation = (int_arg("unfold", name, v) for name, v in
                                (("size", size), ("step", step), ("dilation", dilation)))
        span = dilation * (size - 1) + 1
        if size < 1 or step < 1 or dilation < 1 or span > self.shape[d]:
            raise ShapeError(f"unfold: window of size {size} (dilation {dilation}) and step {step} does not fit "
                             f"dim {d} of shape {self.shape}")
        count = (self.shape[d] - span) // step + 1
        check_numel("unfold", (*self.shape[:d], count, *self.shape[d + 1:], size))
        return F.Unfold.apply(self, dim=d, size=size, step=step, dilation=dilation)

    def cumsum(self, dim: int):
        from .. import dtypes as dt
        d = normalize_dim("cumsum", dim, self.ndim)
        x = self if self.dtype.is_float or self.dtype is dt.int64 else self.to(dt.int64)
        if x.ndim == 0 or x.shape[d] == 1:
            return x * 1 if x.dtype is not dt.bool_ else x
        return F.Cumsum.apply(x, axis=d)

    # ---- indexing --------------------------------------------------------------------------
    def __getitem__(self, index):
        if not isinstance(index, tuple):
            index = (index,)
        if any(not isinstance(i, (int, slice, type(None), type(Ellipsis))) or isinstance(i, bool) for i in index):
            bad = next(i for i in index if not isinstance(i, (int, slice, type(None), type(Ellipsis))) or isinstance(i, bool))
            raise TypeError(f"indexing with {type(bad).__name__} is not supported: use ints, slices, None and ...")
        if sum(i is Ellipsis for i in index) > 1:
            raise IndexError("an index can only have a single ellipsis ('...')")
        used = sum(1 for i in index if i is not None and i is not Ellipsis)
        if used > self.ndim:
            raise IndexError(f"too many indices for tensor of shape {self.shape}: {used} indices")
        if Ellipsis in index:
            k = index.index(Ellipsis)
            index = index[:k] + (slice(None),) * (self.ndim - used) + index[k + 1:]
        else:
            index = index + (slice(None),) * (self.ndim - used)
        bounds, flips, steps, final, d = [], [], [], [], 0
        for i in index:
            if i is None:
                final.append(1)
                continue
            n = self.shape[d]
            if isinstance(i, int):
                if not -n <= i < n:
                    raise IndexError(f"index {i} is out of bounds for dim {d} with size {n}")
                i %= n
                bounds.append((i, i + 1)); flips.append(False); steps.append(1)
            else:
                start, stop, step = i.indices(n)
                if step == 0:
                    raise ValueError("slice step cannot be zero")
                count = len(range(start, stop, step))
                if count == 0:
                    bounds.append((0, 0)); flips.append(False); steps.append(1)
                elif step > 0:
                    bounds.append((start, start + (count - 1) * step + 1)); flips.append(False); steps.append(step)
                else:
                    last = start + (count - 1) * step
                    bounds.append((last, start + 1)); flips.append(True); steps.append(-step)
                final.append(count)
            d += 1
        x = self._shrink(tuple(bounds))._flip(tuple(flips))._step(tuple(steps))
        return x.reshape(*final)


def cat(tensors: Sequence, dim: int = 0):
    """Join tensors along an existing dim (every other dim must match)."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty sequence of tensors")
    ref = tensors[0]
    d = normalize_dim("cat", dim, ref.ndim)
    from .. import dtypes as dt
    dtype = dt.promote(*[t.dtype for t in tensors])
    for t in tensors:
        if t.ndim != ref.ndim or any(a != b for i, (a, b) in enumerate(zip(t.shape, ref.shape)) if i != d):
            raise ShapeError(f"cat: shapes {[tuple(t.shape) for t in tensors]} do not match outside dim {d}")
    total = sum(t.shape[d] for t in tensors)
    out, start = None, 0
    for t in tensors:
        pads = [(0, 0)] * ref.ndim
        pads[d] = (start, total - start - t.shape[d])
        piece = t.to(dtype)._pad(tuple(pads))
        out = piece if out is None else out + piece
        start += t.shape[d]
    return out


def stack(tensors: Sequence, dim: int = 0):
    """Join tensors of equal shape along a new dim."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    if any(t.shape != tensors[0].shape for t in tensors):
        raise ShapeError(f"stack: all tensors must have the same shape, got {[tuple(t.shape) for t in tensors]}")
    d = normalize_dim("stack", dim, tensors[0].ndim + 1)
    return cat([t.unsqueeze(d) for t in tensors], d)


def pad(x, pad: Sequence[int], mode: str = "constant", value: float = 0.0):
    """PyTorch's ``F.pad``: ``pad`` lists (left, right) pairs starting from the last dim; negative
    amounts crop. Refused like PyTorch: odd or too long ``pad``, non-int amounts, crops that leave a
    negative size, reflect padding not smaller than the dim, circular padding larger than the dim."""
    if isinstance(pad, (str, bytes)) or not isinstance(pad, Sequence):
        raise TypeError(f"pad: pad must be a sequence of ints, got {pad!r}")
    pad = [int_arg("pad", "pad", v) for v in pad]
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ShapeError(f"pad: padding {tuple(pad)} must have an even length of at most 2*{x.ndim} "
                         f"(input of shape {x.shape})")
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise ValueError(f"pad: unknown mode {mode!r} (constant, reflect, replicate, circular)")
    pairs = [(0, 0)] * x.ndim
    for k in range(len(pad) // 2):
        pairs[x.ndim - 1 - k] = (pad[2 * k], pad[2 * k + 1])
    for d, ((b, a), n) in enumerate(zip(pairs, x.shape)):
        # PyTorch crops first in constant mode (an empty result is fine); edge modes must keep something
        if (n + min(b, 0) + min(a, 0) if mode == "constant" else n + b + a) < 0:
            raise ShapeError(f"pad: padding {(b, a)} of dim {d} (size {n}) of input {x.shape} leaves a "
                             f"negative size")
    check_numel("pad", [n + max(b, 0) + max(a, 0) for (b, a), n in zip(pairs, x.shape)])
    if mode != "constant":
        _check_edge_pad(x, pairs, len(pad) // 2, mode)
    # negative amounts crop: pad by the positive amounts first (edge modes read the whole input),
    # then cut the negative ones off
    pos = tuple((max(0, b), max(0, a)) for b, a in pairs)
    out = _pad_constant(x, pos, value) if mode == "constant" else _pad_edges(x, pos, mode)
    return out._shrink(tuple((max(0, -b), s - max(0, -a)) for (b, a), s in zip(pairs, out.shape)))


def _pad_constant(x, pos, value):
    out = x._pad(pos)
    if value != 0 and any(b or a for b, a in pos):
        from .. import dtypes as dt
        from .tensor import where
        inside = x._const(True, dt.bool_).expand(*x.shape)._pad(pos)
        out = where(inside, out, value)
    return out


def _check_edge_pad(x, pairs, count: int, mode: str) -> None:
    """PyTorch's limits for reflect, replicate and circular padding."""
    # the padded dims and those before them, except a leading batch dim, must not be empty
    keep = x.ndim - count - 1
    if mode != "circular" and any(s == 0 for s in x.shape[max(0, keep):]):
        raise ShapeError(f"pad: {mode} padding needs non-empty dims (all but a leading batch dim), "
                         f"got input of shape {x.shape}")
    for d, (b, a) in enumerate(pairs):
        n = x.shape[d]
        if not (b or a):
            continue
        if mode == "reflect" and (b >= n or a >= n):
            raise ArgumentError(f"pad: reflect padding {(b, a)} must be smaller than the input size {n} of dim {d}")
        if mode == "circular" and (b > n or a > n or n == 0):
            raise ArgumentError(f"pad: circular padding {(b, a)} must be at most the input size {n} of dim {d}")


def _pad_edges(x, pos, mode: str):
    for d, (b, a) in enumerate(pos):
        if not (b or a):
            continue
        n = x.shape[d]
        sl = lambda lo, hi, step=1: x[(slice(None),) * d + (slice(lo, hi, step),)]
        if mode == "reflect":
            left, right = sl(b, 0, -1), sl(n - 2, n - 2 - a if n - 2 - a >= 0 else None, -1)
        elif mode == "replicate":
            left = sl(0, 1).expand(*x.shape[:d], b, *x.shape[d + 1:])
            right = sl(n - 1, n).expand(*x.shape[:d], a, *x.shape[d + 1:])
        else:
            left, right = sl(n - b, n), sl(0, a)
        x = cat([left, x, right], d)
    return x


def fold(windows, dim: int, length: int, step: int, dilation: int = 1):
    """Sum sliding windows back into a dim of ``length`` (the adjoint of ``unfold``):
    ``windows[..., j, ..., k]`` lands on position ``j * step + k * dilation`` of ``dim``."""
    size = windows.shape[-1]
    if step > 1 and dilation == 1:
        return _fold_polyphase(windows, dim, length, step)
    out = None
    for k in range(size):
        piece = windows[(slice(None),) * (windows.ndim - 1) + (k,)]
        if step > 1:
            piece = _spread(piece, dim, step)
        out = _accumulate_at(out, piece, dim, k * dilation, length)
    return out


def _spread(t, dim: int, step: int):
    """Put ``step - 1`` zeros after every element along ``dim`` (a copy: views cannot express it)."""
    n = t.shape[dim]
    t = t.unsqueeze(dim + 1)
    pads = [(0, 0)] * t.ndim
    pads[dim + 1] = (0, step - 1)
    t = t._pad(tuple(pads))
    return t.reshape(*t.shape[:dim], n * step, *t.shape[dim + 2:])


def _accumulate_at(out, piece, dim: int, start: int, length: int):
    """``out + piece`` with ``piece`` placed at ``start`` of a dim of ``length`` (cropped to fit)."""
    n = piece.shape[dim]
    bounds = [(0, s) for s in piece.shape]
    bounds[dim] = (0, max(0, min(n, length - start)))
    piece = piece._shrink(tuple(bounds))
    pads = [(0, 0)] * piece.ndim
    pads[dim] = (start, length - start - piece.shape[dim])
    piece = piece._pad(tuple(pads))
    return piece if out is None else out + piece


def _fold_polyphase(windows, dim: int, length: int, step: int):
    """fold for dilation 1: output position q*step + r sums windows[q - m, m*step + r] over m,
    so each output phase r is a sum of ceil(size/step) shifted slices (no zeros are added up)."""
    size, count = windows.shape[-1], windows.shape[dim]
    nd = windows.ndim
    order = [i for i in range(nd - 1) if i != dim] + [dim, nd - 1]
    w = windows.permute(*order)
    taps = -(-size // step)
    if taps * step != size:
        w = w._pad(((0, 0),) * (nd - 1) + ((0, taps * step - size),))
    w = w.reshape(*w.shape[:-1], taps, step)
    rows = count + taps - 1
    acc = None
    for m in range(taps):
        piece = w[(slice(None),) * (nd - 1) + (m,)]
        acc = _accumulate_at(acc, piece, nd - 2, m, rows)
    flat = acc.reshape(*acc.shape[:-2], rows * step)
    flat = _accumulate_at(None, flat, nd - 2, 0, length)
    back = list(range(nd - 2))
    back.insert(dim, nd - 2)
    return flat.permute(*back)
