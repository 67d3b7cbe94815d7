"""Plan one memory arena for buffers whose lifetimes do not overlap."""
from __future__ import annotations

from typing import Dict, List, Tuple

ALIGN = 64


def plan_arena(intervals: Dict[int, Tuple[int, int, int]]) -> Tuple[Dict[int, int], int]:
    """Offsets for buffers given ``{key: (nbytes, first_use, last_use)}``; returns (offsets, size).

    Greedy best-fit by size: a buffer may share bytes with any buffer whose [first, last] use
    interval is disjoint from its own.
    """
    placed: List[Tuple[int, int, int, int]] = []   # (offset, end, first, last)
    offsets: Dict[int, int] = {}
    size = 0
    for key, (nbytes, first, last) in sorted(intervals.items(), key=lambda kv: (-kv[1][0], kv[1][1])):
        nbytes = -(-max(nbytes, 1) // ALIGN) * ALIGN
        busy = sorted((o, e) for o, e, f, l in placed if not (l < first or last < f))
        offset = 0
        for o, e in busy:
            if offset + nbytes <= o:
                break
            offset = max(offset, e)
        offsets[key] = offset
        placed.append((offset, offset + nbytes, first, last))
        size = max(size, offset + nbytes)
    return offsets, size
