"""Seeded random weights keyed by parameter name, so that two implementations of one model
(audiograd's and a reference's, in different processes) get identical weights without a file."""
from __future__ import annotations

import math
import zlib
from typing import Dict, Tuple

import numpy as np


def is_gain(name: str) -> bool:
    """Normalisation gains, which start at one (random values around zero would null them)."""
    return name.endswith(("norm.weight", "gamma", "norm.gamma"))


def seeded_value(name: str, shape: Tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A float32 array for parameter ``name``: normal / sqrt(fan-in) (fan-in is the last dim of
    a matrix, the product of all but the first dim of a convolution), around 1 for gains. The
    stream depends only on ``seed`` and the name, not on the order of parameters."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    value = rng.standard_normal(shape, dtype=np.float32) * np.float32(1 / math.sqrt(max(fan_in, 1)))
    if is_gain(name):
        value = np.float32(1) + np.float32(0.1) * value
    return value


def seeded_state(shapes: Dict[str, Tuple[int, ...]], seed: int = 0, skip=()) -> Dict[str, np.ndarray]:
    """``seeded_value`` for every name in ``shapes`` except those ending with one of ``skip``."""
    return {k: seeded_value(k, tuple(s), seed) for k, s in shapes.items() if not k.endswith(tuple(skip))}
