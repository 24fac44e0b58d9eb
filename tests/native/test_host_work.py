"""Host work per decode step is O(L): the native side counts the cells and
pages it visits in each llama_decode (stats.visited); that count must not grow
with n_ctx nor with the length of the chain."""

from __future__ import annotations

import pytest

from raas_local import native
from raas_local.engine import Engine
from raas_local.policies import CachePolicy


def _visits(path, policy: CachePolicy, n_ctx: int, steps: int) -> list[int]:
    eng = Engine(path, policy=policy, n_ctx=n_ctx, n_threads=2)
    eng.prefill([5 + i % 11 for i in range(20)])
    seen = []
    for t in range(steps):
        eng.decode_one_token(5 + t % 7)
        seen.append(native.get_stats(eng.ctx).visited)
    eng.close()
    return seen


@pytest.mark.parametrize("kind", ["dense", "quest", "streaming"])
def test_policies_without_scores_visit_no_cells_per_step(tiny_llama, kind):
    path, _ = tiny_llama
    for n_ctx in (512, 8192):
        seen = _visits(path, CachePolicy(kind=kind, budget=64, page_size=16), n_ctx, 300)
        # the first step after the prompt recounts the pinned cells once
        assert max(seen[1:]) <= (16 if kind == "streaming" else 0), (n_ctx, max(seen[1:]))


@pytest.mark.parametrize("kind", ["raas", "h2o"])
def test_scoring_policies_visit_the_kv_view_and_their_pages_only(tiny_llama, kind):
    path, _ = tiny_llama
    budget = 64
    small = _visits(path, CachePolicy(kind=kind, budget=budget, page_size=16), 512, 400)
    large = _visits(path, CachePolicy(kind=kind, budget=budget, page_size=16), 8192, 400)
    # the KV view is padded to 256 cells; pages are at most the budget
    bound = 256 + 2 * budget
    assert max(small[1:]) <= bound and max(large[1:]) <= bound
    # the chain grew from 100 to 400 tokens without the count growing
    assert max(small[300:]) <= max(small[50:100]) + 0
    assert small[1:] == large[1:]
