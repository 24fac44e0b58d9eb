"""dense: llama.cpp as it is, no eviction. The reference every policy is compared with.

It has no settings: it holds every token, in a context of ``-c`` cells or the
model's training context.
"""

from __future__ import annotations

from dataclasses import dataclass

from raas_local.policies.base import Policy, register


@register("dense")
@dataclass(frozen=True)
class DensePolicy(Policy):
    native_kind = 0
    evicts = False
