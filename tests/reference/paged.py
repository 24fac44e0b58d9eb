"""The page machinery every reference policy shares (docs/raas-policy.md, "Objects").

A reference keeps its own set of cached positions, pins and pages, and is fed
only what a user sees: the positions each step places and the scores that
``Engine.last_scores()`` exposes. Subclasses give the two per-policy rules:
``victim`` (which closed page to free) and ``observe`` (after a step).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Page:
    first: int
    last: int
    n: int
    ts: int
    closed: bool
    score: float = 0.0
    acc: float = 0.0


class PagedReference:
    def __init__(self, budget: int, page_size: int):
        self.budget, self.page_size = budget, page_size
        self.cached: set[int] = set()
        self.pins: list[tuple[int, int]] = []
        self.pages: list[Page] = []
        self.step = 0

    def pin(self, p0: int, p1: int) -> None:
        self.pins.append((p0, p1))

    def pinned(self, p: int) -> bool:
        return any(a <= p < b for a, b in self.pins)

    def evictable(self, newest: int) -> list[Page]:
        """Closed pages that do not hold the newest position, in position order."""
        return [pg for pg in self.pages if pg.closed and not (pg.first <= newest <= pg.last)]

    def victim(self, newest: int) -> Page:
        raise NotImplementedError

    def observe(self, scores: dict[int, float]) -> None:
        """After a decode step; the default sets each page's score to the max over its cells."""
        for pg in self.pages:
            pg.score = max(scores.get(p, 0.0) for p in range(pg.first, pg.last + 1) if p in self.cached)

    def before_place(self, n: int) -> list[int]:
        """Evict until n more tokens fit; returns the first positions freed, in order.

        When no page is left to free, victim() raises; ``freed`` still lists what went before."""
        self.freed: list[int] = []
        while len(self.cached) + n > self.budget:
            victim = self.victim(max(self.cached))
            self.cached -= set(range(victim.first, victim.last + 1))
            self.pages.remove(victim)
            self.freed.append(victim.first)
        return self.freed

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

    def table(self) -> list[tuple[int, int, int]]:
        return [(pg.first, pg.last, pg.ts) for pg in self.pages]
