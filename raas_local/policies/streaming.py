"""streaming: StreamingLLM (Xiao et al., arXiv 2309.17453): attention sinks + recent window.

The first ``n_sink`` positions are pinned as sinks (they lie in the prompt, which
every policy here pins anyway); to make room the oldest closed decode page goes,
so the decode cells kept are the most recent pages that fit the budget.
native/raas-policy-streaming.cpp runs it.
"""

from __future__ import annotations

from dataclasses import dataclass

from raas_local.errors import PolicyError
from raas_local.policies.base import check_pages, register


@register("streaming")
@dataclass(frozen=True)
class StreamingPolicy:
    budget: int = 512
    page_size: int = 16
    n_sink: int = 4
    native_kind = 2
    evicts = True

    def __post_init__(self):
        check_pages(self.budget, self.page_size)
        if self.n_sink < 0:
            raise PolicyError(f"sink count must be >= 0, got {self.n_sink}")

    @classmethod
    def from_policy(cls, p) -> "StreamingPolicy":
        return cls(budget=p.budget, page_size=p.page_size, n_sink=p.n_sink)

    def native_params(self, p) -> dict:
        return dict(kind=self.native_kind, budget=self.budget, page_size=self.page_size, refresh_ratio=1.0, n_sink=self.n_sink)
