"""(f) Bad input gets a clear error and no crash."""

from __future__ import annotations

import pytest

from raas_local import native
from raas_local.engine import Engine, generate_text
from raas_local.errors import PolicyError
from raas_local.policies import CachePolicy


def test_budget_below_two_pages_python_side():
    with pytest.raises(PolicyError, match=r"budget 31 is below two pages \(32 cells at page size 16\)"):
        CachePolicy(kind="raas", budget=31)


def test_page_size_zero_python_side():
    with pytest.raises(PolicyError, match="page size must be at least 1, got 0"):
        CachePolicy(kind="raas", page_size=0)


def test_native_checks_do_not_trust_the_caller(tiny_llama):
    path, _ = tiny_llama
    eng = Engine(path, policy=CachePolicy(kind="raas", budget=64, page_size=4), n_ctx=256)
    with pytest.raises(PolicyError, match="page size must be at least 1, got 0"):
        native.set_policy(eng.ctx, native.KIND_RAAS, 64, 0, 0.5)
    with pytest.raises(PolicyError, match="below two pages"):
        native.set_policy(eng.ctx, native.KIND_RAAS, 7, 4, 0.5)
    with pytest.raises(PolicyError, match="exceeds the 256 KV cells"):
        native.set_policy(eng.ctx, native.KIND_RAAS, 1000, 4, 0.5)
    with pytest.raises(PolicyError, match="refresh ratio"):
        native.set_policy(eng.ctx, native.KIND_RAAS, 64, 4, 0.0)
    with pytest.raises(PolicyError, match="not implemented"):
        native.set_policy(eng.ctx, 99, 64, 4, 0.5)
    eng.close()


def test_prompt_too_long_names_the_smallest_budget(tiny_llama):
    path, _ = tiny_llama
    eng = Engine(path, policy=CachePolicy(kind="raas", budget=32, page_size=4), n_ctx=256)
    prompt = [5] * 30
    with pytest.raises(PolicyError, match=r"needs 30 pinned KV cells .* use --budget 38 or more, or --policy dense"):
        eng.prefill(prompt)
    # nothing was decoded; the engine still works with a prompt that fits
    assert eng.cache_stats().used == 0
    eng.prefill([5] * 10)
    eng.decode_one_token(6)
    assert eng.cache_stats().used == 11
    eng.close()


def test_iswa_model_is_refused_by_raas_and_runs_dense(tiny_gemma3):
    with pytest.raises(PolicyError, match=r"policy raas cannot serve gemma3: .*iSWA.*use --policy dense"):
        Engine(tiny_gemma3, policy=CachePolicy(kind="raas", budget=64))
    eng = Engine(tiny_gemma3, policy=CachePolicy(kind="dense"), n_ctx=256)
    text, stats = generate_text(eng, "the cat", raw=True, max_tokens=12, temperature=0, ignore_eos=True)
    assert stats.generated_tokens == 12
    eng.close()
