"""Argument and size checks shared by the ops that take strides, kernels, paddings and shapes.

Size limit: a tensor may have at most ``MAX_NUMEL`` (2**48) elements. That is more memory than
any machine has for the smallest dtype (256 TiB of bytes), so it never refuses real work, and it
keeps every byte size (below 2**51) and every index or offset a kernel computes far inside int64:
a shape that overflows, or a padding of 2**62, is refused when the op is recorded instead of
reaching the C compiler as an absurd constant or wrapping around to an empty loop.
"""
from __future__ import annotations

import math
import operator
from typing import Sequence, Tuple

from ..graph.view import MAX_NUMEL
from .errors import ArgumentError, ShapeError


def int_arg(op: str, name: str, value) -> int:
    """``value`` as a Python int (numpy ints accepted); TypeError naming ``op`` and ``name`` otherwise."""
    if isinstance(value, bool):
        raise TypeError(f"{op}: {name} must be an int, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{op}: {name} must be an int, got {value!r} of type {type(value).__name__}") from None


def int_tuple(op: str, name: str, value, n: int) -> Tuple[int, ...]:
    """One int repeated ``n`` times, or a sequence of exactly ``n`` ints (PyTorch's ``_single``/``_pair``)."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ArgumentError(f"{op}: {name} must be an int or {n} ints, got {tuple(value)!r}")
        return tuple(int_arg(op, name, v) for v in value)
    return (int_arg(op, name, value),) * n


def positive(op: str, name: str, values: Sequence[int]) -> None:
    """Refuse zero or negative entries (strides, kernel sizes, dilations, groups)."""
    if any(v <= 0 for v in values):
        raise ArgumentError(f"{op}: {name} must be positive, got {_show(values)}")


def non_negative(op: str, name: str, values: Sequence[int]) -> None:
    """Refuse negative entries (convolution and pooling paddings, output_padding)."""
    if any(v < 0 for v in values):
        raise ArgumentError(f"{op}: {name} must be non-negative, got {_show(values)}")


def _show(values):
    values = tuple(values)
    return values[0] if len(values) == 1 else values


def check_numel(op: str, shape: Sequence[int]) -> None:
    """Refuse a shape with more than ``MAX_NUMEL`` elements (ShapeError naming ``op`` and the shape)."""
    n = math.prod(shape)
    if n > MAX_NUMEL:
        raise ShapeError(f"{op}: shape {tuple(shape)} has {n} elements, more than the {MAX_NUMEL} (2**48) "
                         f"a tensor can have")


def check_shape(op: str, shape: Sequence) -> Tuple[int, ...]:
    """``shape`` as a tuple of ints after refusing non-int (TypeError), negative or too large sizes."""
    out = tuple(int_arg(op, "size", s) for s in shape)
    if any(s < 0 for s in out):
        raise ShapeError(f"{op}: sizes must be non-negative, got shape {out}")
    check_numel(op, out)
    return out
