"""Read a safetensors file as numpy arrays, checking its JSON header before reading any tensor bytes.

Layout: an 8-byte little-endian header length, a JSON header mapping each name to ``dtype``,
``shape`` and ``data_offsets`` (begin, end within the data that follows), then the data.
BF16 tensors are widened to float32 (numpy has no bfloat16; the conversion is exact); 8-bit
float formats are refused with a clear error.
"""
from __future__ import annotations

import json
import math
import mmap
import struct
from pathlib import Path
from typing import Dict

import numpy as np

from .checkpoint_errors import CheckpointError
from .tensor_records import INT64_MAX, bfloat16_to_float32

MAX_HEADER_BYTES = 100 << 20

_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4",
           "I16": "<i2", "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "u1"}


def load_safetensors(path: Path) -> Dict[str, np.ndarray]:
    """All tensors of a safetensors file, by name."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        header, data_start = _header(buf)
        data_len = len(buf) - data_start
        entries = {name: _entry(name, entry, data_len) for name, entry in header.items() if name != "__metadata__"}
        _check_disjoint(entries)
        out = {}
        for name, (dtype, shape, begin, end) in entries.items():
            entry = header[name]
            raw = np.frombuffer(buf, dtype=dtype, count=math.prod(shape), offset=data_start + begin).copy()
            if entry["dtype"] == "BF16":
                raw = bfloat16_to_float32(raw)
            elif entry["dtype"] == "BOOL":
                raw = raw != 0
            out[name] = raw.astype(raw.dtype.newbyteorder("="), copy=False).reshape(shape)
        return out


def safetensors_metadata(path: Path) -> Dict[str, str]:
    """The ``__metadata__`` strings of a safetensors file (checked as :func:`load_safetensors` does)."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return dict(_header(buf)[0].get("__metadata__", {}))
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    except (OSError, ValueError) as e:  # an empty file cannot be mapped
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None


def _check_disjoint(entries) -> None:
    """Tensors may not share bytes: overlapping ranges would let a small file expand into a huge load."""
    reach, holder = 0, None
    for begin, end, name in sorted((b, e, n) for n, (_, _, b, e) in entries.items() if e > b):
        if begin < reach:
            raise CheckpointError(f"tensors {holder!r} and {name!r} overlap in the data section")
        if end > reach:
            reach, holder = end, name


def _header(buf):
    if len(buf) < 8:
        raise CheckpointError("file too short to be a safetensors file")
    (n,) = struct.unpack_from("<Q", buf, 0)
    if n > len(buf) - 8 or n > MAX_HEADER_BYTES:
        raise CheckpointError(f"safetensors header claims {n} bytes, but the file has {len(buf) - 8} after the "
                              "length field")
    try:
        header = json.loads(bytes(buf[8:8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"safetensors header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"safetensors header is a JSON {type(header).__name__}, not an object")
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CheckpointError("safetensors __metadata__ must map names to strings")
    return header, 8 + n


def _entry(name: str, entry, data_len: int):
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
        raise CheckpointError(f"tensor {name!r}: header entry needs dtype, shape and data_offsets")
    code, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if isinstance(code, str) and code.startswith("F8"):
        raise CheckpointError(f"tensor {name!r}: 8-bit float dtype {code} is not supported")
    if not isinstance(code, str) or code not in _DTYPES:
        raise CheckpointError(f"tensor {name!r}: unknown dtype {str(code)[:20]!r}")
    if not isinstance(shape, list) or len(shape) > 64 or not all(_count(s) for s in shape):
        raise CheckpointError(f"tensor {name!r}: shape {str(shape)[:60]} is not a list of non-negative integers")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_count(o) for o in offsets):
        raise CheckpointError(f"tensor {name!r}: data_offsets {str(offsets)[:60]} is not [begin, end]")
    dtype = np.dtype(_DTYPES[code])
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > INT64_MAX:
        raise CheckpointError(f"tensor {name!r}: shape {shape} does not fit in 64 bits")
    begin, end = offsets
    if not begin <= end <= data_len:
        raise CheckpointError(f"tensor {name!r}: data_offsets [{begin}, {end}] are outside the {data_len} data bytes")
    if end - begin != nbytes:
        raise CheckpointError(f"tensor {name!r}: shape {shape} of {code} needs {nbytes} bytes, "
                              f"data_offsets give {end - begin}")
    return dtype, tuple(shape), begin, end


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= INT64_MAX
