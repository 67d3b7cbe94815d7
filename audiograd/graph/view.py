"""A strided, masked window onto a contiguous buffer: how movement ops stay free.

A View maps an index in its own shape to a flat element offset in its base buffer:
``offset + sum(i_k * strides[k])``, valid only where every ``mask[k][0] <= i_k < mask[k][1]``
(outside the mask the element reads as zero; that is how padding is expressed). Reshape,
permute, expand, pad, slice, flip and step each map one View to another without touching data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

Shape = Tuple[int, ...]


def contiguous_strides(shape: Shape) -> Tuple[int, ...]:
    """Row-major strides for ``shape`` (0 for size-1 dims, so equal views compare equal)."""
    strides, acc = [], 1
    for s in reversed(shape):
        strides.append(acc if s != 1 else 0)
        acc *= s
    return tuple(reversed(strides))


# the most elements a tensor may have (``tensor.checks`` explains the choice); it lives in this
# lowest layer so that views enforce it too
MAX_NUMEL = 2 ** 48


def _check_size(shape) -> None:
    """The last line of defence behind the ops' own checks: every movement op ends here, so no
    view with a negative size or more than ``MAX_NUMEL`` elements can reach a kernel."""
    if any(s < 0 for s in shape) or math.prod(shape) > MAX_NUMEL:
        from ..errors import ShapeError
        raise ShapeError(f"shape {tuple(shape)} has a negative size or more than {MAX_NUMEL} (2**48) elements")


@dataclass(frozen=True)
class View:
    shape: Shape
    strides: Tuple[int, ...]
    offset: int = 0
    mask: Optional[Tuple[Tuple[int, int], ...]] = None

    @staticmethod
    def contiguous(shape: Shape) -> "View":
        _check_size(shape)
        return View(tuple(shape), contiguous_strides(tuple(shape)), 0, None)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def is_contiguous(self) -> bool:
        return self.offset == 0 and self.mask is None and self.strides == contiguous_strides(self.shape)

    @property
    def fully_masked(self) -> bool:
        return self.mask is not None and any(lo >= hi for lo, hi in self.mask)

    def _with_mask(self, mask) -> Optional[Tuple[Tuple[int, int], ...]]:
        if mask is None:
            return None
        if all(lo == 0 and hi == s for (lo, hi), s in zip(mask, self.shape)):
            return None
        return tuple(mask)

    def _mask_or_full(self):
        return self.mask if self.mask is not None else tuple((0, s) for s in self.shape)

    @staticmethod
    def make(shape, strides, offset, mask) -> "View":
        shape = tuple(shape)
        _check_size(shape)
        strides = tuple(0 if s == 1 else st for s, st in zip(shape, strides))
        if mask is not None:
            mask = tuple((max(0, lo), min(s, hi)) for (lo, hi), s in zip(mask, shape))
            if any(lo >= hi for lo, hi in mask):
                # nothing is readable: a canonical all-masked view
                return View(shape, (0,) * len(shape), 0, tuple((0, 0) for _ in shape))
            if all(lo == 0 and hi == s for (lo, hi), s in zip(mask, shape)):
                mask = None
        return View(shape, strides, offset, mask)

    # ---- movement ------------------------------------------------------------------------
    def permute(self, order) -> "View":
        m = None if self.mask is None else tuple(self.mask[i] for i in order)
        return View.make([self.shape[i] for i in order], [self.strides[i] for i in order], self.offset, m)

    def expand(self, new_shape: Shape) -> "View":
        mask = None
        if self.mask is not None:
            mask = [(0, n) if s == 1 and m == (0, 1) else m for s, n, m in zip(self.shape, new_shape, self.mask)]
        strides = [0 if s != n else st for s, n, st in zip(self.shape, new_shape, self.strides)]
        return View.make(new_shape, strides, self.offset, mask)

    def pad(self, pads) -> "View":
        """``pads`` is one (before, after) pair of non-negative ints per dim."""
        if all(b == 0 and a == 0 for b, a in pads):
            return self
        mask = self._mask_or_full()
        shape = [s + b + a for s, (b, a) in zip(self.shape, pads)]
        offset = self.offset - sum(b * st for (b, _), st in zip(pads, self.strides))
        new_mask = [(lo + b, hi + b) for (lo, hi), (b, _) in zip(mask, pads)]
        return View.make(shape, self.strides, offset, new_mask)

    def shrink(self, bounds) -> "View":
        """Keep ``lo <= i < hi`` in each dim (``bounds`` is one (lo, hi) pair per dim)."""
        offset = self.offset + sum(lo * st for (lo, _), st in zip(bounds, self.strides))
        mask = None
        if self.mask is not None:
            mask = [(mlo - lo, mhi - lo) for (mlo, mhi), (lo, _) in zip(self.mask, bounds)]
        return View.make([hi - lo for lo, hi in bounds], self.strides, offset, mask)

    def flip(self, flags) -> "View":
        offset = self.offset + sum((s - 1) * st for s, st, f in zip(self.shape, self.strides, flags) if f and s > 0)
        strides = [-st if f else st for st, f in zip(self.strides, flags)]
        mask = None
        if self.mask is not None:
            mask = [(s - hi, s - lo) if f else (lo, hi) for (lo, hi), s, f in zip(self.mask, self.shape, flags)]
        return View.make(self.shape, strides, offset, mask)

    def step(self, steps) -> "View":
        """Take every ``steps[k]``-th element of dim k, starting at 0 (steps are positive)."""
        shape = [-(-s // k) for s, k in zip(self.shape, steps)]
        strides = [st * k for st, k in zip(self.strides, steps)]
        mask = None
        if self.mask is not None:
            mask = [(-(-lo // k), -(-hi // k)) for (lo, hi), k in zip(self.mask, steps)]
        return View.make(shape, strides, self.offset, mask)

    def unfold(self, arg) -> Optional["View"]:
        """Sliding windows along one dim: ``arg = (dim, size, step, dilation)``. The dim becomes
        the window count and a new last dim of ``size`` indexes within a window (overlapping
        reads of the same elements). None when the dim is masked."""
        dim, size, step, dilation = arg
        if self.mask is not None and self.mask[dim] != (0, self.shape[dim]):
            return None
        count = (self.shape[dim] - dilation * (size - 1) - 1) // step + 1
        shape = list(self.shape)
        shape[dim] = count
        strides = list(self.strides)
        strides[dim] = self.strides[dim] * step
        mask = None if self.mask is None else list(self.mask) + [(0, size)]
        if mask is not None:
            mask[dim] = (0, count)
        return View.make(shape + [size], strides + [self.strides[dim] * dilation], self.offset, mask)

    def reshape(self, new_shape: Shape) -> Optional["View"]:
        """The same elements in ``new_shape``, or None when no single View can express it."""
        new_shape = tuple(new_shape)
        if new_shape == self.shape:
            return self
        if 0 in self.shape or 0 in new_shape:
            return View.contiguous(new_shape)
        if self.fully_masked:
            return View.make(new_shape, (0,) * len(new_shape), 0, [(0, 0)] * len(new_shape))
        mask = self._mask_or_full()
        old = [(s, st, m) for s, st, m in zip(self.shape, self.strides, mask) if s != 1]
        new_idx = [k for k, s in enumerate(new_shape) if s != 1]
        strides = [0] * len(new_shape)
        new_mask = [(0, s) for s in new_shape]
        i = j = 0
        while i < len(old) and j < len(new_idx):
            i2, j2 = i + 1, j + 1
            po, pn = old[i][0], new_shape[new_idx[j]]
            while po != pn:
                if po < pn:
                    po *= old[i2][0]
                    i2 += 1
                else:
                    pn *= new_shape[new_idx[j2]]
                    j2 += 1
            group = old[i:i2]
            for (s0, st0, _), (s1, st1, _) in zip(group, group[1:]):
                if st0 != st1 * s1:
                    return None
            masked = any(m != (0, s) for s, _, m in group)
            if masked and (i2 - i != 1 or j2 - j != 1):
                return None
            acc = group[-1][1]
            for k in reversed(new_idx[j:j2]):
                strides[k] = acc
                acc *= new_shape[k]
            if masked:
                new_mask[new_idx[j]] = group[0][2]
            i, j = i2, j2
        return View.make(new_shape, strides, self.offset, new_mask if self.mask is not None else None)

    def compose(self, history) -> Optional["View"]:
        """Apply a recorded list of movement ops (see ``graph.lazy``) to this View."""
        v: Optional[View] = self
        for op, arg in history:
            v = getattr(v, op)(arg)
            if v is None:
                return None
        return v
