"""(d) and (e): RaaS against dense llama.cpp on the embedded model.

(d) with a budget at least the whole length nothing is evicted and the logits
are bit-identical to dense; (e) after each eviction the logits equal those of a
dense context from which the same positions were removed with
llama_memory_seq_rm at the same step.
"""

from __future__ import annotations

import llama_cpp
import numpy as np

from raas_local.engine import Engine
from raas_local.policies import CachePolicy

PROMPT = "Question: Tom has 3 apples and buys 5 more. How many apples does he have? Answer step by step.\n"


def test_budget_above_length_is_bit_identical_to_dense():
    raas = Engine(policy=CachePolicy(kind="raas", budget=512), n_ctx=512)
    dense = Engine(policy=CachePolicy(kind="dense"), n_ctx=512)
    toks = raas.tokenize(PROMPT)
    raas.prefill(toks)
    dense.prefill(toks)
    assert np.array_equal(raas.logits(), dense.logits())
    for _ in range(300):
        tok = int(np.argmax(dense.logits()))
        raas.decode_one_token(tok)
        dense.decode_one_token(tok)
        assert np.array_equal(raas.logits(), dense.logits())
    assert raas.cache_stats().evictions == 0
    raas.close()
    dense.close()


def test_after_eviction_logits_equal_dense_with_seq_rm():
    raas = Engine(policy=CachePolicy(kind="raas", budget=64, page_size=16), n_ctx=256)
    dense = Engine(policy=CachePolicy(kind="dense"), n_ctx=256)
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
