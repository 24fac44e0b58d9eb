"""Plain-Python model of the RaaS rule (docs/raas-policy.md), independent of the C++."""

from __future__ import annotations

import math

import numpy as np

from reference.paged import PagedReference


def n_refresh(ratio: float, n_pages: int) -> int:
    return math.ceil(ratio * n_pages - 1e-6)


class RaasReference(PagedReference):
    # no defaults: the reference states every choice, so a changed default of the policy cannot slip past it
    def __init__(self, budget: int, page_size: int, refresh_ratio: float, page_score: str, protect_pages: int):
        super().__init__(budget, page_size)
        self.ratio = refresh_ratio
        self.page_score = page_score
        self.protect_pages = protect_pages

    @classmethod
    def of(cls, policy) -> "RaasReference":
        """The reference of a RaasPolicy's settings (head_agg and skip_layers shape the scores, not the rule)."""
        return cls(policy.budget, policy.page_size, policy.refresh_ratio, policy.page_score, policy.protect_pages)

    def victim(self, newest):
        # the open page (still filling, or holding the newest position) and the protect_pages before it stay
        evictable = self.evictable(newest)
        n_open = 0 if not self.pages or self.pages[-1] in evictable else 1
        kept = self.pages[len(self.pages) - min(len(self.pages), n_open + self.protect_pages):]
        candidates = [pg for pg in evictable if not any(pg is k for k in kept)]
        if not candidates:
            raise RuntimeError("no page to free")
        return min(candidates, key=lambda pg: (pg.ts, pg.first))

    def observe(self, scores):
        """Page score = max (or mean, or sum) over its cached cells, in float32 as the cache keeps them;
        the top share by (score desc, first desc) gets ts = step."""
        for pg in self.pages:
            cells = [np.float32(scores.get(p, 0.0)) for p in range(pg.first, pg.last + 1) if p in self.cached]
            total = np.float32(sum(cells, np.float32(0.0)))
            pg.score = float({"max": max(cells) if cells else np.float32(0.0),
                              "sum": total,
                              "mean": total / np.float32(len(cells)) if cells else np.float32(0.0)}[self.page_score])
        order = sorted(self.pages, key=lambda pg: (-pg.score, -pg.first))
        for pg in order[: n_refresh(self.ratio, len(self.pages))]:
            pg.ts = self.step
