"""raas: Reasoning-aware Attention Sparsity (Hu et al., arXiv 2502.11147).

Prompt cells are pinned; decode cells form pages of ``page_size`` positions.
After each step the pages whose max attention score is in the top
``refresh_ratio`` share get the step as timestamp; to make room the closed page
with the oldest (timestamp, first position) is freed. The rule runs in C++
(native/raas-policy-raas.cpp); docs/raas-policy.md states it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from raas_local.errors import PolicyError
from raas_local.policies.base import BUDGET, PAGE_SIZE, Policy, check_pages, register


@register("raas")
@dataclass(frozen=True)
class RaasPolicy(Policy):
    budget: int = BUDGET
    page_size: int = PAGE_SIZE
    refresh_ratio: float = 0.5
    native_kind = 1
    evicts = True

    def __post_init__(self):
        check_pages(self.budget, self.page_size)
        if not 0.0 < self.refresh_ratio <= 1.0:
            raise PolicyError(f"refresh ratio must be in (0, 1], got {self.refresh_ratio}")

    def native_params(self) -> dict:
        return {**super().native_params(), "refresh_ratio": self.refresh_ratio}
