"""Plain-Python model of the RaaS rule (docs/raas-policy.md), independent of the C++.

It keeps its own set of cached positions, pins and pages, and is fed only what
a user can see: the positions each step places and the scores that
``Engine.last_scores()`` exposes. Tests drive it side by side with the real
llama.cpp and require the same evictions and page tables at every step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def n_refresh(ratio: float, n_pages: int) -> int:
    return math.ceil(ratio * n_pages - 1e-6)


@dataclass
class Page:
    first: int
    last: int
    n: int
    ts: int
    closed: bool
    score: float = 0.0


class RaasReference:
    def __init__(self, budget: int, page_size: int, refresh_ratio: float = 0.5):
        self.budget, self.page_size, self.ratio = budget, page_size, refresh_ratio
        self.cached: set[int] = set()
        self.pins: list[tuple[int, int]] = []
        self.pages: list[Page] = []
        self.step = 0

    def pin(self, p0: int, p1: int) -> None:
        self.pins.append((p0, p1))

    def pinned(self, p: int) -> bool:
        return any(a <= p < b for a, b in self.pins)

    def before_place(self, n: int) -> list[int]:
        """Evict until n more tokens fit; returns the first positions freed, in order."""
        freed = []
        while len(self.cached) + n > self.budget:
            newest = max(self.cached)
            candidates = [pg for pg in self.pages if pg.closed and not (pg.first <= newest <= pg.last)]
            if not candidates:
                raise RuntimeError("no page to free")
            victim = min(candidates, key=lambda pg: (pg.ts, pg.first))
            self.cached -= set(range(victim.first, victim.last + 1))
            self.pages.remove(victim)
            freed.append(victim.first)
        return freed

    def place(self, positions: list[int]) -> None:
        positions = sorted(positions)
        if any(not self.pinned(p) for p in positions):
            self.step += 1
        for p in positions:
            self.cached.add(p)
            if self.pinned(p):
                if self.pages:
                    self.pages[-1].closed = True
                continue
            last = self.pages[-1] if self.pages else None
            if last is not None and not last.closed and p == last.last + 1:
                last.last, last.n = p, last.n + 1
                last.closed = last.n >= self.page_size
            else:
                if last is not None:
                    last.closed = True
                self.pages.append(Page(p, p, 1, self.step, self.page_size <= 1))

    def observe(self, scores: dict[int, float]) -> None:
        """After a decode step: page score = max over its cached cells; refresh the top share."""
        for pg in self.pages:
            pg.score = max(scores.get(p, 0.0) for p in range(pg.first, pg.last + 1) if p in self.cached)
        order = sorted(self.pages, key=lambda pg: (-pg.score, -pg.first))
        for pg in order[: n_refresh(self.ratio, len(self.pages))]:
            pg.ts = self.step

    def table(self) -> list[tuple[int, int, int]]:
        return [(pg.first, pg.last, pg.ts) for pg in self.pages]
