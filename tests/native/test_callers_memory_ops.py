"""The caller's own memory ops under a policy (llama_memory_seq_rm, seq_add, seq_div).

After ``seq_rm(.., p, -1)`` and decoding again from p, the page table stays
exact: pages in position order, each made of cached positions only, and
together exactly the cached decode positions. Logits equal those of a dense
context that went through the same removals. Shifting positions (seq_add,
seq_div) is unsupported under an evicting policy: the next decode fails with
an error that names the call.
"""

from __future__ import annotations

import llama_cpp
import numpy as np
import pytest

from raas_local.engine import Engine
from raas_local.errors import RaasError
from raas_local.policies import CachePolicy


def _check_pages_exact(eng: Engine, n_prompt: int):
    pages = eng.page_table()
    cached = set(eng.last_scores())  # positions of the cells the last step saw
    for a, b in zip(pages, pages[1:]):
        assert a.last_pos < b.first_pos, (a, b)
    in_pages = set()
    for pg in pages:
        span = set(range(pg.first_pos, pg.last_pos + 1))
        assert span <= cached, pg
        assert pg.n_cells == len(span), pg
        in_pages |= span
    assert in_pages == {p for p in cached if p >= n_prompt}


def test_seq_rm_tail_then_decode_keeps_the_page_table_exact(tiny_llama):
    path, _ = tiny_llama
    eng = Engine(path, policy=CachePolicy(kind="raas", budget=64, page_size=8), n_ctx=64, n_threads=2)
    dense = Engine(path, policy=CachePolicy(kind="dense"), n_ctx=512, n_threads=2)
    prompt = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
    eng.prefill(prompt)
    dense.prefill(prompt)

    def step():
        tok = int(np.argmax(eng.logits()))
        eng.decode_one_token(tok)
        for first in eng.last_evicted():
            llama_cpp.llama_memory_seq_rm(dense.memory, 0, first, first + 8)
        dense.decode_one_token(tok)
        assert np.array_equal(eng.logits(), dense.logits())

    for _ in range(70):
        step()
    assert eng.cache_stats().evictions > 0
    for back in (13, 3, 9):  # mid-page, within the open page, across a page boundary
        p = eng.position - back
        eng.truncate(p)
        dense.truncate(p)
        for _ in range(25):
            step()
        _check_pages_exact(eng, len(prompt))
        assert max(pg.last_pos for pg in eng.page_table()) == eng.position - 1
    eng.close()
    dense.close()


@pytest.mark.parametrize("op", ["seq_add", "seq_div"])
def test_shifting_positions_fails_the_next_decode_with_a_clear_error(tiny_llama, op):
    path, _ = tiny_llama
    eng = Engine(path, policy=CachePolicy(kind="raas", budget=64, page_size=8), n_ctx=64, n_threads=2)
    eng.prefill([5, 6, 7, 8])
    for t in range(20):
        eng.decode_one_token(5 + t % 7)
    # the classic context shift: drop [4, 12), move the rest back by 8
    llama_cpp.llama_memory_seq_rm(eng.memory, 0, 4, 12)
    if op == "seq_add":
        llama_cpp.llama_memory_seq_add(eng.memory, 0, 12, -1, -8)
    else:
        llama_cpp.llama_memory_seq_div(eng.memory, 0, 12, -1, 2)
    eng._pos = llama_cpp.llama_memory_seq_pos_max(eng.memory, 0) + 1
    with pytest.raises(RaasError, match=r"policy raas cannot follow positions moved by llama_memory_seq_add or llama_memory_seq_div"):
        eng.decode_one_token(5)
    eng.close()


@pytest.mark.parametrize("kind", ["raas", "streaming", "h2o"])
def test_stats_after_a_reset_or_a_callers_seq_rm_count_what_is_cached_now(tiny_llama, kind):
    """The pinned/used counters are running totals: a clear or a caller's seq_rm must not leave
    them stale until the next decode (the next prompt's room check reads them before it)."""
    path, _ = tiny_llama
    page = 1 if kind == "h2o" else 8
    eng = Engine(path, policy=CachePolicy(kind=kind, budget=64, page_size=page) if kind != "h2o"
                 else CachePolicy(kind=kind, budget=64), n_ctx=64, n_threads=1)
    eng.prefill(list(range(5, 35)))
    assert eng.cache_stats().pinned == 30
    eng.reset()
    s = eng.cache_stats()
    assert (s.used, s.pinned, s.decode_cells) == (0, 0, 0)
    eng.check_prompt_fits(40)  # 40 pinned + two pages fit 64: refused when the old 30 still counted
    eng.prefill(list(range(5, 25)))
    llama_cpp.llama_memory_seq_rm(eng.memory, 0, 10, -1)
    s = eng.cache_stats()
    assert (s.used, s.pinned, s.decode_cells) == (10, 10, 0)
    eng.close()
