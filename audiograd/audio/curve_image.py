"""Loss curves as a picture with numpy: one labelled strip per curve, drawn on a shared step axis.

Curves whose values are all positive are drawn on a log scale (losses fall over decades),
others linearly; each strip is labelled with its name and its first and last values.
"""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from .spectrogram_image import BACKGROUND, GAP, draw_text

_LABEL_ROWS = 16
_COLORS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14),
           (23, 190, 207), (140, 86, 75), (227, 119, 194)]


def _value_label(value: float) -> str:
    return "NAN" if not np.isfinite(value) else f"{value:.3g}".upper().replace("+", "")


def _strip(values: np.ndarray, name: str, width: int, height: int, color) -> np.ndarray:
    strip = np.full((height, width, 3), BACKGROUND, np.uint8)
    strip[[0, -1], :] = 200
    strip[:, [0, -1]] = 200
    finite = values[np.isfinite(values)]
    if finite.size:
        y = np.log10(values) if finite.min() > 0 else values.astype(np.float64)
        lo, hi = np.nanmin(y[np.isfinite(y)]), np.nanmax(y[np.isfinite(y)])
        span = hi - lo if hi > lo else 1.0
        cols = np.linspace(1, width - 2, num=len(values)) if len(values) > 1 else np.array([width / 2])
        top = _LABEL_ROWS  # the curve stays below the label
        rows = (height - 3) - (y - lo) / span * (height - 4 - top)
        for i in range(len(values)):
            if not np.isfinite(rows[i]):
                continue
            r, c = int(round(rows[i])), int(round(cols[i]))
            strip[max(r - 1, 1):r + 1, max(c, 1):c + 1] = color
            if i and np.isfinite(rows[i - 1]):  # join to the previous point with a vertical run
                a, b = sorted((int(round(rows[i - 1])), r))
                strip[max(a, 1):b + 1, max(c, 1)] = color
    label = f"{name.upper()}  {_value_label(values[0])} - {_value_label(values[-1])}" if len(values) else name.upper()
    draw_text(strip, label, 4, 6, scale=2, color=60)
    return strip


def curves_image(curves: Dict[str, Sequence[float]], width: int = 600, strip_height: int = 90) -> np.ndarray:
    """uint8 RGB image with one strip per named curve (in the dict's order), ``width`` pixels
    wide, each value sequence spread over the full width."""
    strips = []
    for i, (name, values) in enumerate(curves.items()):
        if strips:
            strips.append(np.full((GAP, width, 3), BACKGROUND, np.uint8))
        strips.append(_strip(np.asarray(values, np.float64), name, width, strip_height, _COLORS[i % len(_COLORS)]))
    if not strips:
        return np.full((strip_height, width, 3), BACKGROUND, np.uint8)
    return np.concatenate(strips, axis=0)
