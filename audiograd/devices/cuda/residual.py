"""Fold a residual sum into the convolution that produces one of its terms (on the GPU).

``conv(x) + r``, where the convolution's result is used only by that sum, becomes one
``conv_rows`` node that reads ``r`` as an addend: the GPU kernels add it as they write their
output (the tensor-core kernel in its epilogue; the cuBLAS path starts its accumulation from
it), so the sum costs no pass of its own over the output. The pass changes no node: it names
the new ``conv_rows`` node (the convolution's arg plus the flag "addend", its sources plus the
addend) as what computes the sum's value, in the sum's buffer. Only full-shape plain buffers
are folded, so the addend needs no copy. It is a pass of the GPU only: the CPU kernels have no
addend.
"""
from __future__ import annotations

from typing import Dict, Iterable, Set

from ...graph.lazy import LazyNode, library
from ...graph.library_ops import ADDEND, CONV_ROWS, has_addend
from ...graph.view import View

def _plain(node: LazyNode) -> bool:
    """A whole buffer-to-be, read at the identity (no copy needed to hand it to a kernel)."""
    if node.is_view:
        v = node.view
        return v.mask is None and v == View.contiguous(node.base.shape) and node.shape == node.base.shape \
            and node.base.op != "const"
    return node.op != "const"


def fold_residual_adds(nodes: Iterable[LazyNode], consumers: Dict[int, Set[int]],
                       keep: Set[int]) -> Dict[int, LazyNode]:
    """``{sum id: conv_rows node with the addend}`` for every foldable ``add`` among ``nodes``
    (bases; ``consumers`` maps a base id to its users' ids; ``keep`` are ids that must stay
    buffers of their own)."""
    folded: Dict[int, LazyNode] = {}
    for node in nodes:
        if node.realized or node.op != "add":
            continue
        for i, conv in enumerate(node.srcs):
            other = node.srcs[1 - i]
            if (conv.is_view or conv.realized or conv.op != "conv_rows" or has_addend(conv) or conv.id in keep
                    or consumers.get(conv.id) != {node.id} or other.shape != conv.shape
                    or other.dtype != conv.dtype or not _plain(other) or other.base is conv):
                continue
            folded[node.id] = library(CONV_ROWS, conv.srcs + (other,), conv.dtype, conv.arg + (ADDEND,))
            break
    return folded
