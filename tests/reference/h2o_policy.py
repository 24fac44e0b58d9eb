"""Plain-Python model of the H2O baseline: per cell, accumulated attention, a protected recent window."""

from __future__ import annotations

import math

import numpy as np

from reference.paged import PagedReference


class H2OReference(PagedReference):
    def __init__(self, budget: int, heavy_ratio: float = 0.5):
        super().__init__(budget, page_size=1)
        # the C++ gets the ratio as a float32 and floors in double
        self.recent = budget - math.floor(float(np.float32(heavy_ratio)) * budget)

    def observe(self, scores):
        super().observe(scores)
        for pg in self.pages:
            pg.acc = float(np.float32(pg.acc) + np.float32(pg.score))  # the C++ accumulates in float32

    def victim(self, newest):
        candidates = self.evictable(newest)
        old = [pg for pg in candidates if pg.last < newest - self.recent + 1]
        if not old:
            return candidates[0]
        return min(old, key=lambda pg: (pg.acc, pg.first))
