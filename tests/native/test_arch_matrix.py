"""The native cache on the attention shapes of the reasoning models users run.

Tiny GGUFs shaped like qwen2 (QKV bias, GQA 6:1), qwen3 (q/k norm), llama 3
(GQA 4:1, rope frequency factors), mistral (head size apart from n_embd /
n_head) and phi3 (fused QKV, LongRoPE), with flash attention on and off:
  - under the budget, raas gives logits bit-identical to dense at the model's
    default context (the training context);
  - after evictions, raas gives logits equal to a dense context from which the
    same positions were removed with llama_memory_seq_rm at the same step.
The reference is stock llama.cpp (the dense context), not the policy code.
"""

from __future__ import annotations

import llama_cpp
import numpy as np
import pytest

from lockstep import assert_bit_identical_decode
from tiny_gguf import ARCH_SHAPES, write_arch

from raas_local.engine import Engine
from raas_local.policies import CachePolicy

WORDS = "the cat sat on the mat and the dog ran far 1 + 2 = "


@pytest.fixture(scope="module", params=sorted(ARCH_SHAPES))
def arch_model(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("arch") / f"tiny-{request.param}.gguf"
    write_arch(path, request.param)
    return path


def _pair(path, policy, n_ctx, fa):
    """(policy engine sized to n_ctx, dense engine at the model's default context)."""
    kw = dict(flash_attn=fa, n_threads=2)
    return Engine(path, policy=policy, n_ctx=n_ctx, **kw), Engine(path, policy=CachePolicy(kind="dense"), **kw)


@pytest.mark.parametrize("fa", [False, True], ids=["nofa", "fa"])
def test_under_the_budget_logits_are_bit_identical_to_dense(arch_model, fa):
    raas, dense = _pair(arch_model, CachePolicy(kind="raas", budget=256), 256, fa)
    # 69 tokens: with 60 more, far under the budget
    assert_bit_identical_decode(raas, dense, raas.tokenize(WORDS), 60)
    assert raas.cache_stats().evictions == 0
    raas.close()
    dense.close()


@pytest.mark.parametrize("fa", [False, True], ids=["nofa", "fa"])
def test_after_evictions_logits_equal_dense_with_seq_rm(arch_model, fa):
    raas, dense = _pair(arch_model, CachePolicy(kind="raas", budget=64, page_size=16), 64, fa)
    toks = raas.tokenize(WORDS)[:24]
    raas.prefill(toks)
    dense.prefill(toks)
    evicted = 0
    for _ in range(120):
        tok = int(np.argmax(raas.logits()))
        raas.decode_one_token(tok)
        for first in raas.last_evicted():
            assert llama_cpp.llama_memory_seq_rm(dense.memory, 0, first, first + 16)
            evicted += 1
        dense.decode_one_token(tok)
        assert np.array_equal(raas.logits(), dense.logits())
    assert evicted >= 4
    assert raas.cache_stats().used <= 64
    raas.close()
    dense.close()
