"""h2o: Heavy-Hitter Oracle (Zhang et al., arXiv 2306.14048), per cell.

Each decode cell accumulates the attention it receives (summed over heads and
layers, every step). The most recent ``budget - heavy_ratio * budget``
positions are protected; to make room, the unprotected cell with the smallest
accumulated score goes. H2O decides per token, so its pages are single cells and it
has no page-size setting. native/raas-policy-h2o.cpp runs it.
"""

from __future__ import annotations

from dataclasses import dataclass

from raas_local.errors import PolicyError
from raas_local.policies.base import BUDGET, Policy, register


@register("h2o")
@dataclass(frozen=True)
class H2OPolicy(Policy):
    budget: int = BUDGET
    heavy_ratio: float = 0.5
    page_size = 1  # per cell
    native_kind = 3
    evicts = True

    def __post_init__(self):
        if self.budget < 2:
            raise PolicyError(f"budget {self.budget} is below two cells")
        if not 0.0 <= self.heavy_ratio < 1.0:
            raise PolicyError(f"heavy-hitter ratio must be in [0, 1), got {self.heavy_ratio}")

    @property
    def recent(self) -> int:
        return self.budget - int(self.heavy_ratio * self.budget)

    def native_params(self) -> dict:
        return {**super().native_params(), "heavy_ratio": self.heavy_ratio}
