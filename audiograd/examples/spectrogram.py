"""Spectrogram pictures with numpy: log-magnitude STFTs, a magma-like colour map, labels.

:func:`comparison_image` stacks the spectrograms of two clips (the first above the second) on
one shared decibel scale, low frequencies at the bottom of each panel, and labels the panels.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

# (position, R, G, B) anchors of a dark-purple-orange-cream map resembling matplotlib's "magma"
_MAGMA = np.array([(0.00, 0, 0, 4), (0.13, 28, 16, 68), (0.25, 79, 18, 123), (0.38, 129, 37, 129),
                   (0.50, 181, 54, 122), (0.63, 229, 80, 100), (0.75, 251, 135, 97),
                   (0.88, 254, 194, 135), (1.00, 252, 253, 191)], np.float64)

# 3x5 pixel capitals for panel labels, rows top to bottom
_FONT = {"T": ("111", "010", "010", "010", "010"), "A": ("010", "101", "111", "101", "101"),
         "R": ("110", "101", "110", "101", "101"), "G": ("011", "100", "101", "101", "011"),
         "E": ("111", "100", "110", "100", "111"), "S": ("011", "100", "010", "001", "110"),
         "U": ("101", "101", "101", "101", "111"), "L": ("100", "100", "100", "100", "111"),
         " ": ("000",) * 5}


def log_spectrogram(audio: np.ndarray, n_fft: int = 1024, hop: int = 128) -> np.ndarray:
    """``(n_fft // 2 + 1, frames)`` magnitude in dB of a centred, Hann-windowed STFT."""
    x = np.pad(np.asarray(audio, np.float64), n_fft // 2)
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
    mag = np.abs(np.fft.rfft(frames * np.hanning(n_fft + 1)[:-1], axis=1))
    return 20.0 * np.log10(mag.T + 1e-10)


def colorize(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to uint8 RGB with the magma-like colour map."""
    v = np.clip(values, 0.0, 1.0)
    rgb = [np.interp(v, _MAGMA[:, 0], _MAGMA[:, i]) for i in (1, 2, 3)]
    return np.stack(rgb, -1).round().astype(np.uint8)


def draw_text(image: np.ndarray, text: str, row: int, col: int, scale: int = 3) -> None:
    """Draw capital ``text`` in white into ``image`` (H, W, 3) in place, top-left at ``(row, col)``."""
    for i, ch in enumerate(text.upper()):
        glyph = np.array([[c == "1" for c in line] for line in _FONT.get(ch, _FONT[" "])])
        block = np.kron(glyph, np.ones((scale, scale), bool))
        r, c = row, col + i * 4 * scale
        view = image[r:r + block.shape[0], c:c + block.shape[1]]
        view[block[:view.shape[0], :view.shape[1]]] = 255


def comparison_image(clips: Sequence[np.ndarray], labels: Sequence[str], range_db: float = 80.0,
                     n_fft: int = 1024, hop: int = 128, widen: int = 2) -> np.ndarray:
    """uint8 RGB image of the clips' spectrograms stacked top to bottom, one shared scale running
    from the first clip's peak down ``range_db`` dB; each column repeated ``widen`` times."""
    specs = [log_spectrogram(c, n_fft, hop) for c in clips]
    top = specs[0].max()
    panels = []
    for spec, label in zip(specs, labels):
        panel = colorize((spec[::-1] - (top - range_db)) / range_db)
        panel = np.repeat(panel, widen, axis=1)
        draw_text(panel, label, 6, 8)
        panels.append(panel)
    width = max(p.shape[1] for p in panels)
    gap = np.full((4, width, 3), 255, np.uint8)
    rows = []
    for i, p in enumerate(panels):
        rows += ([gap] if i else []) + [np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0)))]
    return np.concatenate(rows, axis=0)
