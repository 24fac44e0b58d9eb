"""raas: Reasoning-aware Attention Sparsity (Hu et al., arXiv 2502.11147).

Prompt cells are pinned; decode cells form pages of ``page_size`` positions.
After each step the pages whose attention score is in the top ``refresh_ratio``
share get the step as timestamp; to make room the closed page with the oldest
(timestamp, first position) is freed. The rule runs in C++
(native/raas-policy-raas.cpp); docs/raas-policy.md states it exactly.

The fields are the choices the paper leaves free: a cell's score over heads
(``head_agg``), layers left out of the score (``skip_layers``, the first ones,
as Quest does), a page's score from its cells' (``page_score``), the share of
pages refreshed (``refresh_ratio``) and recent pages that are never freed
(``protect_pages``). The defaults were chosen by the ablation in docs/bench.md
(page score = mean of its cells, r = 0.25); ``PAPER`` is our reading of the
paper (page score = max, r = 0.5), kept selectable:
``RaasPolicy(**RaasPolicy.PAPER)``, or ``--page-score max --refresh-ratio 0.5``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from raas_local.errors import PolicyError
from raas_local.policies.base import BUDGET, PAGE_SIZE, Policy, check_pages, register

HEAD_AGG = ("sum", "max")            # native.HEAD_AGG's names
PAGE_SCORE = ("max", "mean", "sum")  # native.PAGE_SCORE's names


@register("raas")
@dataclass(frozen=True)
class RaasPolicy(Policy):
    budget: int = BUDGET
    page_size: int = PAGE_SIZE
    refresh_ratio: float = 0.25
    head_agg: str = "sum"
    skip_layers: int = 0
    page_score: str = "mean"
    protect_pages: int = 0
    native_kind = 1
    evicts = True
    PAPER: ClassVar[dict] = {"refresh_ratio": 0.5, "head_agg": "sum", "skip_layers": 0, "page_score": "max",
                             "protect_pages": 0}

    def __post_init__(self):
        check_pages(self.budget, self.page_size)
        if not 0.0 < self.refresh_ratio <= 1.0:
            raise PolicyError(f"refresh ratio must be in (0, 1], got {self.refresh_ratio}")
        if self.head_agg not in HEAD_AGG:
            raise PolicyError(f"head aggregation must be {' or '.join(HEAD_AGG)}, got {self.head_agg!r}")
        if self.page_score not in PAGE_SCORE:
            raise PolicyError(f"page score must be {', '.join(PAGE_SCORE)}, got {self.page_score!r}")
        if self.skip_layers < 0 or self.protect_pages < 0:
            raise PolicyError("skipped layers and protected pages must be >= 0")
        if self.budget < self.min_budget(0):
            raise PolicyError(f"budget {self.budget} is below {2 + self.protect_pages} pages "
                              f"({self.min_budget(0)} cells: two to decode in, {self.protect_pages} protected)")

    def min_budget(self, n_pinned: int) -> int:
        """Two pages to decode in, as every paged kind, plus the protected ones."""
        return n_pinned + (2 + self.protect_pages) * self.page_size

    def native_params(self) -> dict:
        return {**super().native_params(), "refresh_ratio": self.refresh_ratio, "head_agg": self.head_agg,
                "skip_layers": self.skip_layers, "page_score": self.page_score, "protect_pages": self.protect_pages}
