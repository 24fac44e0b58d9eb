"""Plain-Python model of the RaaS rule (docs/raas-policy.md), independent of the C++."""

from __future__ import annotations

import math

from reference.paged import PagedReference


def n_refresh(ratio: float, n_pages: int) -> int:
    return math.ceil(ratio * n_pages - 1e-6)


class RaasReference(PagedReference):
    def __init__(self, budget: int, page_size: int, refresh_ratio: float = 0.5):
        super().__init__(budget, page_size)
        self.ratio = refresh_ratio

    def victim(self, newest):
        candidates = self.evictable(newest)
        if not candidates:
            raise RuntimeError("no page to free")
        return min(candidates, key=lambda pg: (pg.ts, pg.first))

    def observe(self, scores):
        """Page score = max over its cached cells; the top share by (score desc, first desc) gets ts = step."""
        super().observe(scores)
        order = sorted(self.pages, key=lambda pg: (-pg.score, -pg.first))
        for pg in order[: n_refresh(self.ratio, len(self.pages))]:
            pg.ts = self.step
