"""Spectrogram pictures with numpy: log-magnitude STFTs, a magma-like colour map, labelled axes.

:func:`comparison_image` stacks the spectrograms of two clips (the first above the second) on
one shared decibel scale, low frequencies at the bottom of each panel. Each panel is labelled
and has a frequency axis in kHz on its left and a time axis in seconds below it, drawn with a
small bitmap font.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

import numpy as np

# (position, R, G, B) anchors of a dark-purple-orange-cream map resembling matplotlib's "magma"
_MAGMA = np.array([(0.00, 0, 0, 4), (0.13, 28, 16, 68), (0.25, 79, 18, 123), (0.38, 129, 37, 129),
                   (0.50, 181, 54, 122), (0.63, 229, 80, 100), (0.75, 251, 135, 97),
                   (0.88, 254, 194, 135), (1.00, 252, 253, 191)], np.float64)

# 3x5 pixel glyphs, rows top to bottom: capitals for panel labels, digits and the units' letters
_FONT = {"T": ("111", "010", "010", "010", "010"), "A": ("010", "101", "111", "101", "101"),
         "R": ("110", "101", "110", "101", "101"), "G": ("011", "100", "101", "101", "011"),
         "E": ("111", "100", "110", "100", "111"), "S": ("011", "100", "010", "001", "110"),
         "U": ("101", "101", "101", "101", "111"), "L": ("100", "100", "100", "100", "111"),
         "H": ("101", "101", "111", "101", "101"), "k": ("100", "101", "110", "110", "101"),
         "z": ("000", "111", "001", "010", "111"), "s": ("000", "011", "100", "001", "110"),
         "0": ("111", "101", "101", "101", "111"), "1": ("010", "110", "010", "010", "111"),
         "2": ("111", "001", "111", "100", "111"), "3": ("111", "001", "011", "001", "111"),
         "4": ("101", "101", "111", "001", "001"), "5": ("111", "100", "111", "001", "111"),
         "6": ("111", "100", "111", "101", "111"), "7": ("111", "001", "001", "010", "010"),
         "8": ("111", "101", "111", "101", "111"), "9": ("111", "101", "111", "001", "111"),
         ".": ("000", "000", "000", "000", "010"), " ": ("000",) * 5,
         "B": ("110", "101", "110", "101", "110"), "C": ("011", "100", "100", "100", "011"),
         "D": ("110", "101", "101", "101", "110"), "F": ("111", "100", "110", "100", "100"),
         "I": ("111", "010", "010", "010", "111"), "J": ("001", "001", "001", "101", "010"),
         "K": ("101", "101", "110", "101", "101"), "M": ("101", "111", "111", "101", "101"),
         "N": ("110", "101", "101", "101", "101"), "O": ("010", "101", "101", "101", "010"),
         "P": ("110", "101", "110", "100", "100"), "Q": ("010", "101", "101", "110", "011"),
         "V": ("101", "101", "101", "101", "010"), "W": ("101", "101", "111", "111", "101"),
         "X": ("101", "101", "010", "101", "101"), "Y": ("101", "101", "010", "010", "010"),
         "Z": ("111", "001", "010", "100", "111"), "_": ("000", "000", "000", "000", "111"),
         "-": ("000", "000", "111", "000", "000"), "/": ("001", "001", "010", "100", "100")}

AXIS_SCALE = 2            # axis text: 6x10 pixel glyphs
TICK = 4                  # tick mark length in pixels
MARGIN_LEFT = 34          # room for "10" and a tick left of each panel
MARGIN_TOP = 18           # room for the "kHz" unit above each panel
MARGIN_BOTTOM = 20        # room for a tick and the time labels below each panel
MARGIN_RIGHT = 22         # room for the "s" unit right of the time axis
GAP = 4                   # white rows between panels
BACKGROUND, INK = 255, 0


@dataclass(frozen=True)
class Tick:
    """One axis tick: ``pixel`` is the row (frequency) or column (time) inside a panel."""
    pixel: int
    label: str


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


def text_width(text: str, scale: int) -> int:
    """Width in pixels of ``text`` drawn by :func:`draw_text` (glyphs 3 wide, 1 apart)."""
    return max(0, 4 * scale * len(text) - scale)


def draw_text(image: np.ndarray, text: str, row: int, col: int, scale: int = 3, color: int = 255) -> None:
    """Draw ``text`` into ``image`` (H, W, 3) in place, top-left at ``(row, col)``, in grey level
    ``color``. Letters without a glyph of their own use their capital's; parts outside are clipped."""
    for i, ch in enumerate(text):
        rows = _FONT.get(ch) or _FONT.get(ch.upper()) or _FONT[" "]
        glyph = np.array([[c == "1" for c in line] for line in rows])
        block = np.kron(glyph, np.ones((scale, scale), bool))
        r, c = row, col + i * 4 * scale
        r0, c0 = max(r, 0), max(c, 0)
        view = image[r0:r + block.shape[0], c0:c + block.shape[1]]
        view[block[r0 - r:r0 - r + view.shape[0], c0 - c:c0 - c + view.shape[1]]] = color


def nice_step(pixels_per_unit: float, min_pixels: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten whose ticks are at least ``min_pixels`` apart."""
    for exponent in range(-3, 7):
        for mantissa in (1, 2, 5):
            step = mantissa * 10.0 ** exponent
            if step * pixels_per_unit >= min_pixels:
                return step
    return 10.0 ** 7


def _label(value: float) -> str:
    return format(round(value, 6), "g")


def frequency_ticks(sample_rate: int, n_fft: int) -> List[Tick]:
    """kHz ticks of a panel of ``n_fft // 2 + 1`` rows (row 0: Nyquist), 1, 2 or 5 times a power of ten apart."""
    n_bins = n_fft // 2 + 1
    px_per_khz = 1000.0 * n_fft / sample_rate
    step = nice_step(px_per_khz, 3 * AXIS_SCALE * 5)
    ticks, k = [], 0
    while True:
        row = round(n_bins - 1 - k * step * px_per_khz)
        if row < 0:
            return ticks
        ticks.append(Tick(row, _label(k * step)))
        k += 1


def time_ticks(frames: int, sample_rate: int, hop: int, widen: int) -> List[Tick]:
    """Second ticks of a panel of ``frames * widen`` columns (frame ``j`` centred at sample ``j * hop``)
    whose labels fit inside the panel and its right margin."""
    px_per_s = sample_rate / hop * widen
    widest = text_width(_label(frames * hop / sample_rate), AXIS_SCALE) + 4 * AXIS_SCALE
    step = nice_step(px_per_s, widest + 3 * 4 * AXIS_SCALE)
    ticks, k = [], 0
    while True:
        col = round(k * step * px_per_s + (widen - 1) / 2)
        label = _label(k * step)
        if col >= frames * widen or col + text_width(label, AXIS_SCALE) // 2 >= frames * widen + MARGIN_RIGHT - 12:
            return ticks
        ticks.append(Tick(col, label))
        k += 1


def add_axes(panel: np.ndarray, sample_rate: int, n_fft: int, hop: int, widen: int) -> np.ndarray:
    """``panel`` (rows: frequency bins, Nyquist first; columns: frames repeated ``widen`` times)
    framed by white margins with a kHz axis on the left and a seconds axis below."""
    h, w = panel.shape[:2]
    out = np.full((MARGIN_TOP + h + MARGIN_BOTTOM, MARGIN_LEFT + w + MARGIN_RIGHT, 3), BACKGROUND, np.uint8)
    out[MARGIN_TOP:MARGIN_TOP + h, MARGIN_LEFT:MARGIN_LEFT + w] = panel
    glyph_h = 5 * AXIS_SCALE
    for tick in frequency_ticks(sample_rate, n_fft):
        row = MARGIN_TOP + tick.pixel
        out[row, MARGIN_LEFT - TICK:MARGIN_LEFT] = INK
        right = MARGIN_LEFT - TICK - 3
        draw_text(out, tick.label, row - glyph_h // 2, right - text_width(tick.label, AXIS_SCALE), AXIS_SCALE, INK)
    draw_text(out, "kHz", 2, 2, AXIS_SCALE, INK)
    below = MARGIN_TOP + h
    for tick in time_ticks(w // widen, sample_rate, hop, widen):
        col = MARGIN_LEFT + tick.pixel
        out[below:below + TICK, col] = INK
        draw_text(out, tick.label, below + TICK + 2, col - text_width(tick.label, AXIS_SCALE) // 2, AXIS_SCALE, INK)
    draw_text(out, "s", below + TICK + 2, MARGIN_LEFT + w + MARGIN_RIGHT - text_width("s", AXIS_SCALE) - 2,
              AXIS_SCALE, INK)
    return out


def comparison_image(clips: Sequence[np.ndarray], labels: Sequence[str], sample_rate: int,
                     range_db: float = 80.0, n_fft: int = 1024, hop: int = 128, widen: int = 2) -> np.ndarray:
    """uint8 RGB image of the clips' spectrograms stacked top to bottom, one shared scale running
    from the first clip's peak down ``range_db`` dB; each column repeated ``widen`` times; every
    panel has a label and frequency and time axes for ``sample_rate``."""
    specs = [log_spectrogram(c, n_fft, hop) for c in clips]
    top = specs[0].max()
    panels = []
    for spec, label in zip(specs, labels):
        panel = colorize((spec[::-1] - (top - range_db)) / range_db)
        panel = np.repeat(panel, widen, axis=1)
        draw_text(panel, label.upper(), 6, 8)
        panels.append(add_axes(panel, sample_rate, n_fft, hop, widen))
    width = max(p.shape[1] for p in panels)
    gap = np.full((GAP, width, 3), BACKGROUND, np.uint8)
    rows = []
    for i, p in enumerate(panels):
        rows += ([gap] if i else []) + [np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0)),
                                               constant_values=BACKGROUND)]
    return np.concatenate(rows, axis=0)
