"""A minimal PNG encoder (standard library only): 8-bit grayscale, RGB or RGBA images.

Each row is stored with filter type 0 (none) and the image data is one zlib stream in a single
IDAT chunk; that is all a PNG decoder needs. ``encode_png`` returns the file's bytes and
``write_png`` writes them atomically.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

from .io import PathLike, atomic_output

_COLOR_TYPES = {1: 0, 3: 2, 4: 6}      # channels -> PNG colour type (gray, RGB, RGBA)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(image: np.ndarray, level: int = 6) -> bytes:
    """PNG bytes of a uint8 image shaped (height, width) or (height, width, 1 | 3 | 4)."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise TypeError(f"encode_png: expected a uint8 image, got {img.dtype}")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in _COLOR_TYPES or 0 in img.shape[:2]:
        raise ValueError(f"encode_png: expected (height, width[, 1|3|4]) with nonzero sides, got {image.shape}")
    h, w, c = img.shape
    rows = np.concatenate([np.zeros((h, 1), np.uint8), img.reshape(h, w * c)], axis=1)  # filter byte 0
    header = struct.pack(">IIBBBBB", w, h, 8, _COLOR_TYPES[c], 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(rows.tobytes(), level)) + _chunk(b"IEND", b""))


def write_png(path: PathLike, image: np.ndarray) -> None:
    """Write ``image`` (see :func:`encode_png`) to ``path`` atomically."""
    data = encode_png(image)
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
