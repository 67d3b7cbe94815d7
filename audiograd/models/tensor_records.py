"""PyTorch tensor records (storage + offset + size + stride), checked before any array is made.

A checkpoint describes each tensor as a view of a storage. Every number in that description
comes from the file, so each one is checked (types, signs, 64-bit limits, the furthest element
the view can reach against the storage's length) before numpy sees it. bfloat16 storages are
widened to float32, which holds every bfloat16 value exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Tuple

import numpy as np

from .checkpoint_errors import CheckpointError
from .pickle_reader import Global

INT64_MAX = 2 ** 63 - 1
# a view may repeat storage elements (zero strides); copying one out is capped so a tiny file cannot
# ask for terabytes
MAX_EXPANDED_ELEMENTS = 1 << 24

# storage class name -> (numpy dtype of the stored bytes, little-endian)
STORAGE_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "BFloat16Storage": "<u2",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "u1",
}

TORCH_GLOBALS = frozenset(
    [("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor"),
     ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state"),
     ("torch", "Size")] + [("torch", name) for name in STORAGE_DTYPES])


@dataclass(frozen=True)
class StorageRef:
    """One storage a tensor points into: its key in the file, class name and element count."""
    key: str
    type_name: str
    numel: int

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(STORAGE_DTYPES[self.type_name])

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize


@dataclass(frozen=True)
class TensorRecord:
    """A validated view: ``size``/``stride`` in elements, all reachable elements inside the storage."""
    storage: StorageRef
    offset: int
    size: Tuple[int, ...]
    stride: Tuple[int, ...]


def _plain_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CheckpointError(f"{what} is a {type(value).__name__}, not an integer")
    if value < 0:
        raise CheckpointError(f"{what} is negative ({value})")
    if value > INT64_MAX:
        raise CheckpointError(f"{what} ({value}) does not fit in 64 bits")
    return value


def storage_ref(pid, view_ok: bool = False) -> Tuple[StorageRef, Optional[tuple]]:
    """The storage a persistent id names: ('storage', type, key, location, numel[, view])."""
    if not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage":
        raise CheckpointError(f"persistent id {_short(pid)} is not a tensor storage record")
    storage_type, key, _location, numel = pid[1:5]
    if not isinstance(storage_type, Global) or storage_type.module != "torch" \
            or storage_type.name not in STORAGE_DTYPES:
        raise CheckpointError(f"storage type {_short(storage_type)} is not a known tensor storage")
    if not isinstance(key, str) or not key or len(key) > 64:
        raise CheckpointError(f"storage key {_short(key)} is not a short string")
    numel = _plain_int(numel, f"element count of storage {key}")
    if numel * np.dtype(STORAGE_DTYPES[storage_type.name]).itemsize > INT64_MAX:
        raise CheckpointError(f"storage {key}: {numel} elements do not fit in 64-bit byte sizes")
    view = pid[5] if len(pid) == 6 else None
    if view is not None and not view_ok:
        raise CheckpointError(f"storage {key}: a storage view record is not expected in this format")
    return StorageRef(key, storage_type.name, numel), view


def tensor_record(storage: Any, offset: Any, size: Any, stride: Any) -> TensorRecord:
    """Check one (storage, offset, size, stride) tensor description; raise CheckpointError if it does not fit."""
    if not isinstance(storage, StorageRef):
        raise CheckpointError(f"tensor record's storage is a {type(storage).__name__}, not a storage")
    where = f"tensor in storage {storage.key}"
    offset = _plain_int(offset, f"{where}: storage offset")
    if not isinstance(size, tuple) or not isinstance(stride, tuple):
        raise CheckpointError(f"{where}: size and stride must be tuples, got {type(size).__name__} "
                              f"and {type(stride).__name__}")
    if len(size) != len(stride):
        raise CheckpointError(f"{where}: {len(size)} sizes but {len(stride)} strides")
    if len(size) > 64:
        raise CheckpointError(f"{where}: {len(size)} dimensions (at most 64 are supported)")
    size = tuple(_plain_int(s, f"{where}: size[{i}]") for i, s in enumerate(size))
    stride = tuple(_plain_int(s, f"{where}: stride[{i}]") for i, s in enumerate(stride))
    numel = math.prod(size)
    if numel * storage.dtype.itemsize > INT64_MAX:
        raise CheckpointError(f"{where}: shape {size} holds more elements than fit in 64 bits")
    if numel > max(storage.numel, MAX_EXPANDED_ELEMENTS):
        raise CheckpointError(f"{where}: shape {size} repeats the storage's {storage.numel} elements as {numel} "
                              f"(overlapping strides); refusing views larger than {MAX_EXPANDED_ELEMENTS} elements")
    if numel == 0:
        if offset > storage.numel:
            raise CheckpointError(f"{where}: offset {offset} is past the storage's {storage.numel} elements")
    else:
        last = offset + sum((s - 1) * st for s, st in zip(size, stride))
        if last >= storage.numel:
            raise CheckpointError(f"{where}: shape {size}, stride {stride} and offset {offset} reach element "
                                  f"{last}, but the storage holds {storage.numel}")
    return TensorRecord(storage, offset, size, stride)


def materialize(record: TensorRecord, data: np.ndarray, owned: bool = False) -> np.ndarray:
    """A fresh native-order array for ``record`` from its storage's elements ``data`` (already length-checked).

    ``owned``: ``data`` is a private copy used by no other record, so a record covering it whole,
    in order, takes it without another copy."""
    if data.shape != (record.storage.numel,):
        raise CheckpointError(f"storage {record.storage.key}: holds {data.size} elements, "
                              f"its record says {record.storage.numel}")
    numel = math.prod(record.size)
    if owned and data.flags.writeable and record.offset == 0 and numel == data.size \
            and record.stride == _contiguous_strides(record.size):
        return _to_value_dtype(data.reshape(record.size), record.storage.type_name)
    if numel == 0:
        out = np.empty(record.size, dtype=data.dtype)
    else:
        itemsize = data.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(data[record.offset:], shape=record.size,
                                               strides=tuple(st * itemsize for st in record.stride),
                                               writeable=False)
        out = np.array(view, copy=True)
    return _to_value_dtype(out, record.storage.type_name)


def _contiguous_strides(size) -> tuple:
    strides, step = [], 1
    for n in reversed(size):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


def _to_value_dtype(arr: np.ndarray, type_name: str) -> np.ndarray:
    if type_name == "BFloat16Storage":
        return bfloat16_to_float32(arr)
    if type_name == "BoolStorage":
        return arr != 0
    return arr.astype(arr.dtype.newbyteorder("="), copy=False)


def bfloat16_to_float32(raw: np.ndarray) -> np.ndarray:
    """float32 values of little-endian bfloat16 bit patterns (exact: bfloat16 is float32's top half)."""
    return (raw.astype("<u2").astype(np.uint32) << 16).view(np.float32)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
