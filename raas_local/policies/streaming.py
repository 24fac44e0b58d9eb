"""streaming: StreamingLLM (Xiao et al., arXiv 2309.17453): attention sinks + recent window.

The first ``n_sink`` positions are pinned as sinks (they lie in the prompt, which
every policy here pins anyway); to make room the oldest closed decode page goes,
so the decode cells kept are the most recent pages that fit the budget.
native/raas-policy-streaming.cpp runs it.
"""

from __future__ import annotations

from dataclasses import dataclass

from raas_local.errors import PolicyError
from raas_local.policies.base import BUDGET, PAGE_SIZE, Policy, check_pages, register


@register("streaming")
@dataclass(frozen=True)
class StreamingPolicy(Policy):
    budget: int = BUDGET
    page_size: int = PAGE_SIZE
    n_sink: int = 4
    native_kind = 2
    evicts = True

    def __post_init__(self):
        check_pages(self.budget, self.page_size)
        if self.n_sink < 0:
            raise PolicyError(f"sink count must be >= 0, got {self.n_sink}")

    def native_params(self) -> dict:
        return {**super().native_params(), "n_sink": self.n_sink}
