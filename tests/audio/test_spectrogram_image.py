"""The demo's spectrogram picture: size, axes whose ticks are drawn and sit where the signal is."""
import numpy as np
import pytest

from audiograd.audio import spectrogram_image as sp

HOP, WIDEN = 128, 2
# (sample rate, seconds, n_fft): the demo's settings and others whose tick steps differ
CASES = [(22050, 2.0, 1024), (44100, 0.5, 512), (8000, 3.0, 256), (48000, 1.3, 2048)]


def _image(sample_rate, seconds, n_fft, clips=None):
    n = int(seconds * sample_rate)
    if clips is None:
        rng = np.random.default_rng(0)
        clips = [0.1 * rng.standard_normal(n), 0.05 * rng.standard_normal(n)]
    return sp.comparison_image(clips, ["target", "result"], sample_rate=sample_rate, n_fft=n_fft, hop=HOP,
                               widen=WIDEN)


def _panel_size(sample_rate, seconds, n_fft):
    frames = int(seconds * sample_rate) // HOP + 1          # centred STFT frames
    return n_fft // 2 + 1, frames * WIDEN


def _label_box(tick, axis, panel_top, panel_h):
    """(row0, row1, col0, col1) of a tick label as add_axes places it."""
    glyph_h, width = 5 * sp.AXIS_SCALE, sp.text_width(tick.label, sp.AXIS_SCALE)
    if axis == "frequency":
        row = panel_top + tick.pixel - glyph_h // 2
        right = sp.MARGIN_LEFT - sp.TICK - 3
        return row, row + glyph_h, right - width, right
    row = panel_top + panel_h + sp.TICK + 2
    col = sp.MARGIN_LEFT + tick.pixel - width // 2
    return row, row + glyph_h, col, col + width


@pytest.mark.parametrize("sample_rate, seconds, n_fft", CASES)
def test_image_size_and_tick_labels(sample_rate, seconds, n_fft):
    img = _image(sample_rate, seconds, n_fft)
    h, w = _panel_size(sample_rate, seconds, n_fft)
    block_h = sp.MARGIN_TOP + h + sp.MARGIN_BOTTOM
    assert img.dtype == np.uint8
    assert img.shape == (2 * block_h + sp.GAP, sp.MARGIN_LEFT + w + sp.MARGIN_RIGHT, 3)
    f_ticks = sp.frequency_ticks(sample_rate, n_fft)
    t_ticks = sp.time_ticks(w // WIDEN, sample_rate, HOP, WIDEN)
    assert len(f_ticks) >= 3 and len(t_ticks) >= 2
    assert f_ticks[0].label == "0" and t_ticks[0].label == "0"
    ink = np.all(img == sp.INK, axis=-1)
    for top in (sp.MARGIN_TOP, block_h + sp.GAP + sp.MARGIN_TOP):
        painted = np.zeros_like(ink)
        for axis, ticks in (("frequency", f_ticks), ("time", t_ticks)):
            boxes = [_label_box(t, axis, top, h) for t in ticks]
            for (r0, r1, c0, c1), tick in zip(boxes, ticks):
                assert ink[max(r0, 0):r1, c0:c1].sum() >= 3 * sp.AXIS_SCALE ** 2, (axis, tick)
                assert not painted[max(r0, 0):r1, c0:c1].any(), f"{axis} label {tick.label} overlaps another"
                painted[max(r0, 0):r1, c0:c1] = True
            # the tick marks themselves
            for tick in ticks:
                if axis == "frequency":
                    assert ink[top + tick.pixel, sp.MARGIN_LEFT - sp.TICK:sp.MARGIN_LEFT].all()
                else:
                    assert ink[top + h:top + h + sp.TICK, sp.MARGIN_LEFT + tick.pixel].all()
        # between the labels, the left margin is blank: labels are where the ticks say
        margin = ink[top:top + h, :sp.MARGIN_LEFT - sp.TICK] & ~painted[top:top + h, :sp.MARGIN_LEFT - sp.TICK]
        assert not margin.any()


@pytest.mark.parametrize("sample_rate, seconds, n_fft", CASES)
def test_ticks_sit_where_the_signal_is(sample_rate, seconds, n_fft):
    """A sine at a tick's frequency is brightest on that tick's row; a click at a tick's time is
    loudest in that tick's column."""
    n = int(seconds * sample_rate)
    h, w = _panel_size(sample_rate, seconds, n_fft)
    f_tick = sp.frequency_ticks(sample_rate, n_fft)[len(sp.frequency_ticks(sample_rate, n_fft)) // 2]
    t_ticks = sp.time_ticks(w // WIDEN, sample_rate, HOP, WIDEN)
    t_tick = t_ticks[max(1, len(t_ticks) // 2)]
    sine = np.sin(2 * np.pi * float(f_tick.label) * 1000 * np.arange(n) / sample_rate)
    click = np.zeros(n)
    click[round(float(t_tick.label) * sample_rate)] = 1.0
    img = _image(sample_rate, seconds, n_fft, [sine, 1e-3 * np.ones(n) + click]).astype(np.int32)
    top, block_h = sp.MARGIN_TOP, sp.MARGIN_TOP + h + sp.MARGIN_BOTTOM
    sine_panel = img[top:top + h, sp.MARGIN_LEFT:sp.MARGIN_LEFT + w].sum(-1)
    assert abs(int(np.argmax(sine_panel[:, w // 2])) - f_tick.pixel) <= 1
    click_panel = img[block_h + sp.GAP + top:block_h + sp.GAP + top + h, sp.MARGIN_LEFT:sp.MARGIN_LEFT + w].sum(-1)
    loudness = click_panel[h // 2:].sum(0)          # below the label, across the lower half of the bins
    assert abs(int(np.argmax(loudness)) - t_tick.pixel) <= WIDEN


@pytest.mark.parametrize("pixels_per_unit, min_pixels", [(46.4, 30), (23.2, 30), (344.5, 40), (3.1, 50),
                                                          (1e4, 25), (0.5, 7)])
def test_nice_step_is_the_smallest_wide_enough(pixels_per_unit, min_pixels):
    step = sp.nice_step(pixels_per_unit, min_pixels)
    mantissa = step / 10 ** np.floor(np.log10(step) + 1e-9)
    assert round(mantissa, 6) in (1, 2, 5)
    assert step * pixels_per_unit >= min_pixels
    smaller = {1: 0.5, 2: 0.5, 5: 0.4}[round(mantissa)] * step     # the candidate just below
    assert smaller * pixels_per_unit < min_pixels


def test_font_glyphs_are_3x5_and_digits_differ():
    assert all(len(g) == 5 and all(len(r) == 3 and set(r) <= {"0", "1"} for r in g) for g in sp._FONT.values())
    digits = [sp._FONT[str(d)] for d in range(10)]
    assert len(set(digits)) == 10
    for text in ("0123456789.", "kHz", "s", "TARGET", "RESULT"):
        img = np.zeros((12, 200, 3), np.uint8)
        sp.draw_text(img, text, 1, 1, scale=2)
        # every character but a space leaves ink in its own 6x10 cell
        for i, ch in enumerate(text):
            assert img[1:11, 1 + 8 * i:7 + 8 * i].any(), (text, ch)


def test_draw_text_clips_at_the_edges():
    img = np.zeros((8, 8, 3), np.uint8)
    sp.draw_text(img, "88", -3, -2, scale=2)         # partly outside on every side: no error
    sp.draw_text(img, "8", 5, 6, scale=2)
    assert img.any()


def test_every_capital_letter_has_its_own_glyph():
    letters = [sp._FONT[chr(c)] for c in range(ord("A"), ord("Z") + 1)]
    assert len(set(letters)) == 26
