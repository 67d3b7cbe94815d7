"""Data types audiograd computes in, and PyTorch's rules for mixing them."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DType:
    """One element type: its name, C spelling, numpy twin and rank in type promotion."""

    name: str
    ctype: str
    np: type
    itemsize: int
    kind: str  # 'b' bool, 'i' integer, 'f' floating
    rank: int

    @property
    def is_float(self) -> bool:
        return self.kind == "f"

    def __repr__(self) -> str:
        return f"audiograd.{self.name}"


bool_ = DType("bool", "unsigned char", np.bool_, 1, "b", 0)
int32 = DType("int32", "int", np.int32, 4, "i", 1)
int64 = DType("int64", "long long", np.int64, 8, "i", 2)
float32 = DType("float32", "float", np.float32, 4, "f", 3)
float64 = DType("float64", "double", np.float64, 8, "f", 4)

ALL = (bool_, int32, int64, float32, float64)
_BY_NP = {np.dtype(d.np): d for d in ALL}
_BY_NAME = {d.name: d for d in ALL}
default_float = float32


def to_dtype(spec) -> DType:
    """Turn a DType, numpy dtype, Python type or name into a DType; TypeError if unsupported."""
    if isinstance(spec, DType):
        return spec
    if spec is float:
        return default_float
    if spec is int:
        return int64
    if spec is bool:
        return bool_
    if isinstance(spec, str) and spec in _BY_NAME:
        return _BY_NAME[spec]
    try:
        npd = np.dtype(spec)
    except TypeError:
        npd = None
    if npd is not None and npd in _BY_NP:
        return _BY_NP[npd]
    raise TypeError(f"unsupported dtype {spec!r}: audiograd supports "
                    + ", ".join(d.name for d in ALL))


def promote(*dtypes: DType) -> DType:
    """The dtype two tensors combine to (PyTorch's category-then-width order)."""
    return max(dtypes, key=lambda d: d.rank)


def scalar_dtype(value) -> DType:
    """The dtype a Python scalar would have on its own."""
    if isinstance(value, (bool, np.bool_)):
        return bool_
    if isinstance(value, (int, np.integer)):
        return int64
    if isinstance(value, (float, np.floating)):
        return default_float
    raise TypeError(f"unsupported scalar {value!r} of type {type(value).__name__}")


def result_with_scalar(tensor_dtype: DType, value) -> DType:
    """PyTorch's rule: a Python scalar only changes the dtype when it is of a higher category."""
    sd = scalar_dtype(value)
    kinds = "bif"
    if kinds.index(sd.kind) > kinds.index(tensor_dtype.kind):
        return sd
    return tensor_dtype
