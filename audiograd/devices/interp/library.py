"""The library ops (``graph.library_ops``) and products in numpy, for the interpreter device.

Each launch fixes what it needs of its node at compile time (shapes, arguments, views) and
keeps no reference to the graph. Convolutions and FFTs compute in float64 and round once to
the output's dtype; products and attention run in the operands' dtype.
"""
from __future__ import annotations

from typing import List

import numpy as np

from ...graph.lazy import LazyNode
from ...graph.library_ops import has_addend
from ...graph.view import View
from ..device import Launch
from ..host_arrays import strided


def conv_rows(out: np.ndarray, a: np.ndarray, x: np.ndarray, bias, addend, offsets, length: int) -> None:
    """``out[n, g*O+o, t] = bias[g*O+o] + addend[n, g*O+o, t] + sum_{c,k} a[g,o,c,k] * x[n, g*C+c, offsets[k] + t]``
    for ``t < length`` (bias and addend optional); ``x`` is (N, G*C, row length), ``out`` (N, G*O, length)."""
    g, o, c, k = a.shape
    n, rowlen = x.shape[0], x.shape[2]
    taps = np.asarray(offsets, np.int64)[:, None] + np.arange(length)           # (K, T)
    if taps.size and (taps.min() < 0 or taps.max() >= rowlen):
        raise IndexError(f"conv_rows reads row elements {taps.min()}..{taps.max()} of rows of {rowlen}")
    windows = x.reshape(n, g, c, rowlen).astype(np.float64)[..., taps]           # (N, G, C, K, T)
    y = a.reshape(g, o, c * k).astype(np.float64) @ windows.reshape(n, g, c * k, length)
    if bias is not None:
        y += bias.reshape(1, g, o, 1)
    if addend is not None:
        y += addend.reshape(n, g, o, length)
    out.reshape(n, g, o, length)[...] = y


def rfft(out: np.ndarray, x: np.ndarray) -> None:
    """Real FFT of every column of ``x`` (..., n_fft, frames) into ``out``
    (..., 2, n_fft // 2 + 1, frames): real parts, then imaginary parts."""
    spec = np.fft.rfft(x.astype(np.float64), axis=-2)
    out[..., 0, :, :] = spec.real
    out[..., 1, :, :] = spec.imag


def rfft_adjoint(out: np.ndarray, g: np.ndarray) -> None:
    """The transpose of ``rfft`` as a linear map: ``out[t] = sum_k re[k] cos(2 pi k t / n)
    - im[k] sin(2 pi k t / n)`` for ``g`` (..., 2, n // 2 + 1, frames), ``out`` (..., n, frames)."""
    n = out.shape[-2]
    spec = g[..., 0, :, :].astype(np.float64) + 1j * g[..., 1, :, :]
    # irfft(Y)[t] = (Y[0] + Y[n/2] (-1)^t + 2 Re sum_{0<k<n/2} Y[k] e^{2 pi i k t/n}) / n, and the
    # imaginary parts it drops (bins 0 and n/2) meet sin(0) = sin(pi t) = 0 anyway
    weights = np.full((spec.shape[-2], 1), 0.5)
    weights[0] = weights[-1] = 1.0
    out[...] = np.fft.irfft(spec * weights, n=n, axis=-2) * n


def attention(out: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray, bias, scale: float, inner: int) -> None:
    """``out[n] = softmax(q[n] @ k[n]^T * scale + bias plane of n) @ v[n]`` in the operands' dtype;
    ``bias`` is (outer, inner', rows, Lk) as ``ATTENTION`` reads it. A row with no finite score
    gives zeros."""
    n = q.shape[0]
    scores = (q @ k.transpose(0, 2, 1)) * q.dtype.type(scale)
    if bias is not None:
        scores = scores.reshape(n // inner, inner, *scores.shape[1:]) + bias
        scores = scores.reshape(n, *scores.shape[2:])
    m = scores.max(-1, keepdims=True)
    e = np.exp(scores - np.where(m == -np.inf, 0, m).astype(q.dtype))
    s = e.sum(-1, keepdims=True)
    out[...] = (e @ v) / np.where(s > 0, s, 1).astype(q.dtype)


class LibraryLaunch(Launch):
    """A library op over a step's buffers (output first), reshaped to the node's shapes."""

    def __init__(self, node: LazyNode, inputs: List[LazyNode]):
        self.name = node.op
        self.shapes = [node.shape] + [i.shape for i in inputs]
        if node.op == "conv_rows":
            self.weight_view = node.srcs[0].base_view()[1]
            self.offsets, self.length = node.arg[1], node.arg[2]
            self.addend = has_addend(node)
        elif node.op == "attention":
            self.scale, self.inner, (n, lq, lk, d, dv) = node.arg
            self.shapes[1:4] = [(n, lq, d), (n, lk, d), (n, lk, dv)]
        elif node.op not in ("rfft", "rfft_adjoint"):
            raise NotImplementedError(f"the interpreter has no library op {node.op!r}")

    def __call__(self, bufs: List) -> None:
        out = bufs[0]
        if not out.size:
            return
        if self.name == "conv_rows":
            rest = bufs[3:]
            addend = rest.pop() if self.addend else None
            bias = rest[0] if rest else None
            conv_rows(out, strided(bufs[1], self.weight_view), bufs[2].reshape(self.shapes[2]), bias, addend,
                      self.offsets, self.length)
            return
        if self.name == "attention":
            ins = [b.reshape(s) for b, s in zip(bufs[1:], self.shapes[1:])]
            attention(out.reshape(self.shapes[0]), *ins[:3], ins[3] if len(ins) > 3 else None, self.scale, self.inner)
            return
        out = out.reshape(self.shapes[0])
        src = bufs[1].reshape(self.shapes[1])
        (rfft if self.name == "rfft" else rfft_adjoint)(out, src)


class MatmulLaunch(Launch):
    """``a @ b`` with numpy's batching, each operand read through its view of its base."""

    name = "matmul"

    def __init__(self, a_view: View, b_view: View):
        self.views = (a_view, b_view)

    def __call__(self, bufs: List) -> None:
        a, b = (strided(buf, v) for buf, v in zip(bufs[1:], self.views))
        np.matmul(a, b, out=bufs[0])


class CopyLaunch(Launch):
    """Copy the source buffer into the output buffer."""

    name = "copy"

    def __call__(self, bufs: List) -> None:
        np.copyto(bufs[0], bufs[1])
