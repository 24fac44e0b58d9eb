"""Plain-Python model of the StreamingLLM baseline: sinks pinned, the oldest decode page goes."""

from __future__ import annotations

from reference.paged import PagedReference


class StreamingReference(PagedReference):
    def __init__(self, budget: int, page_size: int, n_sink: int = 4):
        super().__init__(budget, page_size)
        if n_sink > 0:
            self.pin(0, n_sink)

    def victim(self, newest):
        return self.evictable(newest)[0]
