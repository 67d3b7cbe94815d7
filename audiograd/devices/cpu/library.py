"""The CPU's library ops: each declared op (``graph.library_ops``) rendered from its C template."""
from __future__ import annotations

import math
from typing import Tuple

from ...config import config
from ...graph.lazy import LazyNode
from .attention_template import numpy_blas, render_attention
from .conv_template import render_conv
from .fft_template import render_fft


def conv_rows_source(node: LazyNode) -> Tuple[str, str]:
    """(function name, C source) of a ``conv_rows`` node; its weight is read through its view."""
    a, x = node.srcs[:2]
    groups, offsets, _ = node.arg[:3]
    g, o, c, k = a.shape
    n, t = node.shape[0], node.shape[2]
    a_view = a.base_view()[1]
    name = f"conv_{n}_{g * o}_{t}_c{c}_k{k}"
    return name, render_conv(name, n, g, c, k, o, t, x.shape[2], offsets, a_view.strides, a_view.offset,
                             len(node.srcs) > 2, config.num_threads)


def fft_source(node: LazyNode) -> Tuple[str, str]:
    """(function name, C source) of an ``rfft`` or ``rfft_adjoint`` node."""
    adjoint = node.op == "rfft_adjoint"
    n_fft = node.arg
    frames = node.shape[-1]
    batch = math.prod(node.shape[:-2] if adjoint else node.shape[:-3])
    name = f"{'irfft_t' if adjoint else 'rfft'}_{batch}_{n_fft}_{frames}_{node.dtype.ctype[0]}"
    return name, render_fft(name, adjoint, n_fft, batch, frames, node.dtype.ctype, config.num_threads)


def attention_source(node: LazyNode) -> Tuple[str, str]:
    """(function name, C source) of an ``attention`` node (its bias, if any, the fourth source)."""
    bias = node.srcs[3].shape if len(node.srcs) > 3 else None
    scale, inner, (n, lq, lk, d, dv) = node.arg
    tag = "x".join(map(str, bias)) if bias else "none"
    name = f"attention_{n}_{lq}_{lk}_{d}_{dv}_b{tag}_i{inner}_{node.dtype.ctype[0]}"
    return name, render_attention(name, node.dtype.ctype, n, lq, lk, d, dv, scale, inner, bias, config.num_threads,
                                  numpy_blas())


SOURCES = {"conv_rows": conv_rows_source, "rfft": fft_source, "rfft_adjoint": fft_source,
           "attention": attention_source}
