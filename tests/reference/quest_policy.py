"""Plain-Python model of Quest's page selection (native/raas-policy-quest.cpp).

Pages are ``page_size`` consecutive cells. A query head ranks the pages by
Quest's upper bound of q.k over the page, per channel the larger of q times
the page's max key and q times its min key, and attends the cells of its top
``budget // page_size`` pages; the page of the current token always counts
among them. Plain loops on purpose: no torch, no numpy, nothing shared with
the C++ or the engine.
"""

from __future__ import annotations

import math


def upper_bound(q: list[float], keys: list[list[float]]) -> float:
    total = 0.0
    for i, qi in enumerate(q):
        hi = max(k[i] for k in keys)
        lo = min(k[i] for k in keys)
        total += max(qi * hi, qi * lo)
    return total


def select(q: list[float], keys: dict[int, list[float]], current: int, budget: int, page_size: int) -> tuple[list[int], float]:
    """Cells (keys' indices) the head attends, and the bound gap at the cut (inf when nothing was cut).

    `keys` maps cell index -> key vector for the cells the token may attend."""
    pages: dict[int, list[int]] = {}
    for cell in sorted(keys):
        pages.setdefault(cell // page_size, []).append(cell)
    top = budget // page_size
    if len(pages) <= top:
        return sorted(keys), math.inf
    bound = {p: (math.inf if current // page_size == p else upper_bound(q, [keys[c] for c in cells])) for p, cells in pages.items()}
    ranked = sorted(bound, key=lambda p: -bound[p])
    chosen, rest = ranked[:top], ranked[top:]
    gap = bound[chosen[-1]] - bound[rest[0]]
    return sorted(c for p in chosen for c in pages[p]), gap
