"""quest: Quest (Tang et al., arXiv 2406.10774), query-aware page selection.

Nothing is evicted: every cell stays cached, so memory grows with the
sequence like dense. At each decode step, in every layer but the first two,
each query head attends only its top ``budget // page_size`` pages of
``page_size`` cells, ranked by Quest's upper bound of q.k over the page
(per channel, q times the page's max or min key); the page of the current
token always counts among them. Prefill is dense.

native/raas-policy-quest.cpp runs it as a per-head mask on llama.cpp's KQ
mask: it reproduces what Quest attends, not Quest's speed (attention still
spans every cell, and the key bounds are recomputed each step).
"""

from __future__ import annotations

from dataclasses import dataclass

from raas_local.errors import PolicyError
from raas_local.policies.base import BUDGET, PAGE_SIZE, Policy, check_pages, register


@register("quest")
@dataclass(frozen=True)
class QuestPolicy(Policy):
    budget: int = BUDGET     # cells each head attends per step, the current page included
    page_size: int = PAGE_SIZE
    native_kind = 4
    evicts = False
    # Its mask differs per head ([n_kv, 1, n_head]). ggml-cuda's flash attention takes one
    # mask for all heads (fattn.cu has no kernel for mask->ne[2] != 1), so llama.cpp's
    # scheduler would run every offloaded layer's attention on the CPU, copying K and V each
    # token; ggml-cuda's soft_max broadcasts a per-head mask (softmax.cu), so with layers on
    # a GPU quest runs without flash attention (Engine.flash_attn_for).
    gpu_flash_attn = False

    def __post_init__(self):
        check_pages(self.budget, self.page_size)
        if 256 % self.page_size:
            # llama.cpp pads the KV view to a multiple of 256 cells; pages must tile it
            raise PolicyError(f"quest needs a page size that divides 256, got {self.page_size}")

    @property
    def top_pages(self) -> int:
        return self.budget // self.page_size
