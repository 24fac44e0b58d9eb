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
from raas_local.policies.base import check_pages, register


@register("raas")
@dataclass(frozen=True)
class RaasPolicy:
    budget: int = 512
    page_size: int = 16
    refresh_ratio: float = 0.5
    native_kind = 1
    evicts = True

    def __post_init__(self):
        check_pages(self.budget, self.page_size)
        if not 0.0 < self.refresh_ratio <= 1.0:
            raise PolicyError(f"refresh ratio must be in (0, 1], got {self.refresh_ratio}")

    @classmethod
    def from_policy(cls, p) -> "RaasPolicy":
        return cls(budget=p.budget, page_size=p.page_size, refresh_ratio=p.refresh_ratio)

    def native_params(self, p) -> dict:
        return dict(kind=self.native_kind, budget=self.budget, page_size=self.page_size, refresh_ratio=self.refresh_ratio)
