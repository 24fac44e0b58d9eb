"""dense: llama.cpp as it is, no eviction. The reference every policy is compared with."""

from __future__ import annotations

from dataclasses import dataclass

from raas_local.policies.base import register


@register("dense")
@dataclass(frozen=True)
class DensePolicy:
    native_kind = 0
    evicts = False

    @classmethod
    def from_policy(cls, p) -> "DensePolicy":
        return cls()

    def native_params(self, p) -> dict:
        return dict(kind=self.native_kind, budget=p.budget, page_size=max(p.page_size, 1), refresh_ratio=1.0)
