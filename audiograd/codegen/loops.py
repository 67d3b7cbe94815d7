"""Lower a kernel's iteration space to a small loop nest: drop size-1 dims, merge dims that
every access walks contiguously, and rewrite each View in the merged coordinates."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

from ..graph.view import View
from ..graph.kernel_ir import Const, Kernel, Load, walk


@dataclass(frozen=True)
class Loop:
    var: str
    size: int
    reduce: bool


@dataclass
class LoopNest:
    loops: List[Loop]             # outer to inner: output loops, then reduce (or scan) loops
    views: Dict[View, View]       # original view -> view over the merged dims
    out_strides: Tuple[int, ...]  # output element stride per merged dim (0 for reduce dims)


def _kinds(k: Kernel) -> List[bool]:
    if k.scan_axis is not None:
        return [i == k.scan_axis for i in range(len(k.full_shape))]
    return [i in k.reduce_axes for i in range(len(k.full_shape))]


def _accesses(k: Kernel) -> List[View]:
    return [e.view for e in walk(k.root) if isinstance(e, (Load, Const))]


def build_loop_nest(k: Kernel) -> LoopNest:
    shape, kinds = list(k.full_shape), _kinds(k)
    views = list(dict.fromkeys(_accesses(k)))
    out = View.contiguous(k.out_shape)
    allv = views + [out]
    # groups of original dims, each becoming one loop
    keep = [d for d in range(len(shape)) if shape[d] != 1]
    groups: List[List[int]] = []
    for d in keep:
        if groups and _mergeable(groups[-1][-1], d, shape, kinds, allv, k.scan_axis):
            groups[-1].append(d)
        else:
            groups.append([d])
    # output loops first, reduce loops innermost, each keeping its relative order
    groups.sort(key=lambda g: kinds[g[0]])
    new_views = {v: _regroup(v, groups) for v in allv}
    loops = [Loop(f"i{n}", _prod(shape[d] for d in g), kinds[g[0]]) for n, g in enumerate(groups)]
    outv = new_views[out]
    return LoopNest(loops, new_views, outv.strides)


def _prod(it) -> int:
    p = 1
    for x in it:
        p *= x
    return p


def _mergeable(a: int, b: int, shape, kinds, views, scan_axis) -> bool:
    if kinds[a] != kinds[b] or a == scan_axis or b == scan_axis:
        return False
    for v in views:
        if v.shape[a] == 1 and v.shape[b] == 1:
            continue
        if v.mask is not None and (v.mask[a] != (0, v.shape[a]) or v.mask[b] != (0, v.shape[b])):
            return False
        if v.shape[a] != shape[a] or v.shape[b] != shape[b]:
            return False
        if v.strides[a] != v.strides[b] * v.shape[b]:
            return False
    return True


def _regroup(v: View, groups: List[List[int]]) -> View:
    shape, strides, mask = [], [], []
    for g in groups:
        sizes = [v.shape[d] for d in g]
        shape.append(_prod(sizes))
        strides.append(v.strides[g[-1]] if _prod(sizes) > 1 else 0)
        if v.mask is not None and len(g) == 1:
            mask.append(v.mask[g[0]])
        else:
            mask.append((0, shape[-1]))
    return View(tuple(shape), tuple(strides), v.offset, tuple(mask) if v.mask is not None else None)
