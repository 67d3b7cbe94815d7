"""Library ops, declared once: each op's name, the shape of its result, and the layout its
inputs must have. Every device implements each op its own way (``devices/<name>/``); the
gradient of each is written once with tensor ops (matmul: ``tensor.functions``, conv_rows:
``nn.conv``, rfft: ``dsp.fft``, attention: ``nn.attention``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Tuple

# spare elements every conv_rows input row carries past its last read: kernels may read (and
# ignore) a full vector block beyond a row's end
ROW_SLACK = 32


@dataclass(frozen=True)
class LibraryOp:
    name: str
    # the result's shape from the sources' shapes and the op's argument
    shape: Callable[[tuple, object], Tuple[int, ...]]
    # needs_copy(node, i, src): whether source i must first be copied into a plain buffer
    needs_copy: Callable[[object, int, object], bool]
    # whether source 0 is handed to the kernel as its base buffer, read through its view
    first_through_view: bool = False


def _masked_or_const(node, i, s) -> bool:
    return (s.is_view and s.view.mask is not None) or s.base.op == "const"


def _any_view_or_const(node, i, s) -> bool:
    return s.is_view or s.base.op == "const"


def _weight_view_rest_plain(node, i, s) -> bool:
    # the weight (first) may be any unmasked view; the rest must be plain buffers
    return (s.is_view and (i != 0 or s.view.mask is not None)) or s.base.op == "const"


def _conv_rows_shape(shapes, arg):
    (g, o, _, _), x = shapes[0], shapes[1]
    return (x[0], g * o, arg[2])


def _rfft_shape(shapes, n_fft):
    x = shapes[0]
    return x[:-2] + (2, n_fft // 2 + 1, x[-1])


def _rfft_adjoint_shape(shapes, n_fft):
    g = shapes[0]
    return g[:-3] + (n_fft, g[-1])


# ``a @ b`` with numpy's batching and broadcasting; read strided (BLAS takes strides)
MATMUL = LibraryOp("matmul", lambda s, arg: s[0][:-1] + (s[1][-1],), _masked_or_const)
# ``y[n, g*O+o, t] = sum_{c,k} A[g,o,c,k] * X[n, g*C+c, offsets[k] + t]`` (+ bias[g*O+o]) (+ addend);
# arg is (groups, offsets, length) and, with an addend (the last source, of y's shape), ADDEND
# after them; rows of X carry ROW_SLACK spare elements
CONV_ROWS = LibraryOp("conv_rows", _conv_rows_shape, _weight_view_rest_plain, first_through_view=True)
# real FFT of every column of (..., n_fft, frames) -> (..., 2, n_fft/2+1, frames); arg is n_fft
RFFT = LibraryOp("rfft", _rfft_shape, _any_view_or_const)
# the transpose (adjoint) of RFFT: (..., 2, n_fft/2+1, frames) -> (..., n_fft, frames)
RFFT_ADJOINT = LibraryOp("rfft_adjoint", _rfft_adjoint_shape, _any_view_or_const)

# softmax(q @ k^T * scale (+ bias)) @ v per batch: q (N, Lq, D), k (N, Lk, D), v (N, Lk, Dv) ->
# (N, Lq, Dv); arg is (scale, inner, (N, Lq, Lk, D, Dv)): the sources are read as those shapes
# whatever shapes they have (a reshaped buffer is passed as it is). The optional bias (the last
# source) is (outer, inner', rows, Lk) with rows 1 or Lq, and batch n reads its plane
# (n // inner if outer > 1 else 0, n % inner if inner' > 1 else 0): a mask shared over heads or
# over batches is never repeated
ATTENTION = LibraryOp("attention", lambda s, arg: (arg[2][0], arg[2][1], arg[2][4]), _any_view_or_const)

ADDEND = "addend"


def has_addend(node) -> bool:
    """Whether a ``conv_rows`` node reads an addend (its last source)."""
    return len(node.arg) > 3 and node.arg[3] == ADDEND


BY_NAME = {op.name: op for op in (MATMUL, CONV_ROWS, RFFT, RFFT_ADJOINT, ATTENTION)}
