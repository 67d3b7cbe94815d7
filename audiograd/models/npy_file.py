"""Read a ``.npy`` file without pickle and without trusting its header.

The header (a Python dict literal of ``descr``, ``fortran_order`` and ``shape``) is parsed as a
literal, and the byte size it implies is checked against the bytes really in the file before
anything is read, so a header claiming terabytes fails at once. Only plain numeric and bool
dtypes, in either byte order, are accepted; the result is in native byte order.
"""
from __future__ import annotations

import ast
import math
import re
import struct
from pathlib import Path

import numpy as np

MAGIC = b"\x93NUMPY"
MAX_HEADER_BYTES = 1 << 16
_KINDS = "fiub"  # float, signed, unsigned, bool
# what np.save writes for those kinds: byte order, kind letter, item size ("<f4", "|u1", "|b1")
_PLAIN_DESCR = re.compile(r"[<>|=]?[fiub][1-8]")
INT64_MAX = 2 ** 63 - 1


class NpyFileError(ValueError):
    """A file that is not a plain numeric ``.npy`` array (message starts with the file's name)."""


def read_npy(path) -> np.ndarray:
    """The array stored in the ``.npy`` file ``path``; NpyFileError naming the file if it is not a safe one."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            f.seek(0)
            descr, fortran, shape, data_start = _header(f)
            nbytes = math.prod(shape) * descr.itemsize
            if nbytes > INT64_MAX:
                raise NpyFileError(f"header shape {shape} does not fit in 64 bits")
            if size - data_start != nbytes:
                raise NpyFileError(f"header says {shape} of {descr} ({nbytes} bytes) but the file holds "
                                   f"{size - data_start} data bytes")
            raw = f.read(nbytes)
    except NpyFileError as e:
        raise NpyFileError(f"{path}: {e}") from None
    except OSError as e:
        raise NpyFileError(f"{path}: cannot read the file ({e.strerror or e})") from None
    if len(raw) != nbytes:
        raise NpyFileError(f"{path}: file shrank while it was read")
    flat = np.frombuffer(raw, dtype=descr)
    arr = flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)
    return np.array(arr, dtype=descr.newbyteorder("="), order="C")


def _header(f):
    if f.read(6) != MAGIC:
        raise NpyFileError("not a .npy file (no \\x93NUMPY magic)")
    version = f.read(2)
    if len(version) != 2 or version[0] not in (1, 2, 3) or version[1] != 0:
        raise NpyFileError(f"unknown .npy format version {tuple(version)}")
    width = "<H" if version[0] == 1 else "<I"
    field = f.read(struct.calcsize(width))
    if len(field) != struct.calcsize(width):
        raise NpyFileError("file ends inside the header")
    (length,) = struct.unpack(width, field)
    if length > MAX_HEADER_BYTES:
        raise NpyFileError(f"header claims {length} bytes; .npy headers are a few hundred")
    text = f.read(length)
    if len(text) != length:
        raise NpyFileError(f"file ends inside the {length}-byte header")
    try:
        header = ast.literal_eval(text.decode("utf-8" if version[0] == 3 else "latin1"))
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError, TypeError):
        raise NpyFileError("header is not a Python dict literal") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise NpyFileError("header must be a dict of exactly descr, fortran_order and shape")
    return _descr(header["descr"]), _fortran(header["fortran_order"]), _shape(header["shape"]), \
        6 + 2 + len(field) + length


def _descr(value) -> np.dtype:
    if not isinstance(value, str) or not _PLAIN_DESCR.fullmatch(value):
        raise NpyFileError(f"dtype {str(value)[:40]!r} is not a plain numeric type")
    try:
        dtype = np.dtype(value)
    except Exception:  # numpy's dtype parser raises TypeError, ValueError or even SyntaxError
        raise NpyFileError(f"unknown dtype {value!r}") from None
    if dtype.kind not in _KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise NpyFileError(f"dtype {value!r} is not a plain numeric type")
    return dtype


def _fortran(value) -> bool:
    if not isinstance(value, bool):
        raise NpyFileError(f"fortran_order is {value!r}, not True or False")
    return value


def _shape(value) -> tuple:
    if not isinstance(value, tuple) or len(value) > 32 or \
            not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= INT64_MAX for n in value):
        raise NpyFileError(f"shape {str(value)[:60]} is not a tuple of non-negative integers")
    return value
