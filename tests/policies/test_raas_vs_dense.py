"""(d) and (e): RaaS (and quest) against dense llama.cpp on the embedded model.

(d) with a budget at least the whole length nothing is evicted and the logits
are bit-identical to dense; (e) after each eviction the logits equal those of a
dense context from which the same positions were removed with
llama_memory_seq_rm at the same step. Quest likewise is bit-identical to dense
while every page fits its budget, and keeps every cell but moves the logits
once it narrows the attention.
"""

from __future__ import annotations

import llama_cpp
import numpy as np
import pytest

from lockstep import assert_bit_identical_decode

from raas_local.engine import Engine
from raas_local.policies import CachePolicy

PROMPT = "Question: Tom has 3 apples and buys 5 more. How many apples does he have? Answer step by step.\n"


@pytest.mark.parametrize("kind", ["raas", "quest"])
def test_budget_above_length_is_bit_identical_to_dense(kind):
    check_bit_identical_under_budget(kind)


def check_bit_identical_under_budget(kind: str, **engine_kw) -> None:
    """(d); engine_kw (n_gpu_layers, flash_attn) lets the GPU lane run the same check."""
    raas = Engine(policy=CachePolicy(kind=kind, budget=512), n_ctx=512, **engine_kw)
    # dense on the same attention path (on a GPU quest runs without flash attention)
    dense = Engine(policy=CachePolicy(kind="dense"), n_ctx=512, **dict(engine_kw, flash_attn=raas.flash_attn_used))
    assert_bit_identical_decode(raas, dense, raas.tokenize(PROMPT), 300)
    assert raas.cache_stats().evictions == 0
    raas.close()
    dense.close()


def test_after_eviction_logits_equal_dense_with_seq_rm():
    check_evictions_equal_dense_with_seq_rm()


def check_evictions_equal_dense_with_seq_rm(**engine_kw) -> None:
    """(e); engine_kw as in check_bit_identical_under_budget."""
    raas = Engine(policy=CachePolicy(kind="raas", budget=64, page_size=16), n_ctx=256, **engine_kw)
    dense = Engine(policy=CachePolicy(kind="dense"), n_ctx=256, **engine_kw)
    toks = raas.tokenize(PROMPT)
    raas.prefill(toks)
    dense.prefill(toks)
    evicted_total = 0
    for _ in range(200):
        tok = int(np.argmax(raas.logits()))
        raas.decode_one_token(tok)
        for first in raas.last_evicted():
            assert llama_cpp.llama_memory_seq_rm(dense.memory, 0, first, first + 16)
            evicted_total += 1
        dense.decode_one_token(tok)
        assert np.array_equal(raas.logits(), dense.logits())
    assert evicted_total > 5
    assert set(raas.last_scores()) == set(range(len(toks))) | {
        p for pg in raas.page_table() for p in range(pg.first_pos, pg.last_pos + 1)
    }
    raas.close()
    dense.close()


def test_quest_keeps_every_cell_and_departs_from_dense_past_its_budget():
    quest = Engine(policy=CachePolicy(kind="quest", budget=64, page_size=16), n_ctx=1024)
    dense = Engine(policy=CachePolicy(kind="dense"), n_ctx=1024)
    toks = quest.tokenize(PROMPT)
    quest.prefill(toks)
    dense.prefill(toks)
    fits, past = [], []
    for _ in range(300):
        tok = int(np.argmax(dense.logits()))  # the same tokens through both
        quest.decode_one_token(tok)
        dense.decode_one_token(tok)
        d = float(np.abs(quest.logits() - dense.logits()).max())
        # while the cells fill at most 4 pages, each head's top 4 pages are all of them
        (fits if quest.position <= 64 else past).append(d)
    s = quest.cache_stats()
    assert s.used == dense.cache_stats().used == len(toks) + 300 and s.evictions == 0
    assert fits and max(fits) == 0.0
    assert max(past) > 1.0
    quest.close()
    dense.close()
