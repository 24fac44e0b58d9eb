"""The C API's error paths: fresh error strings, no writes through null
pointers, refusals that name the policy asked for, and a page table that
matches the cache after a decode that failed once pages were freed."""

from __future__ import annotations

import ctypes
import re
import subprocess
import sys
import textwrap

import llama_cpp
import numpy as np
import pytest

from raas_local import native
from raas_local.engine import Engine
from raas_local.errors import PolicyError, RaasError
from raas_local.policies import CachePolicy


def _raw_decode(eng: Engine, token: int, pos: int) -> int:
    b = llama_cpp.llama_batch_init(1, 0, 1)
    b.n_tokens = 1
    b.token[0], b.pos[0], b.n_seq_id[0], b.seq_id[0][0], b.logits[0] = token, pos, 1, 0, 1
    rc = llama_cpp.llama_decode(eng.ctx, b)
    llama_cpp.llama_batch_free(b)
    return rc


def test_the_error_string_is_cleared_at_every_decode(tiny_llama):
    path, _ = tiny_llama
    eng = Engine(path, policy=CachePolicy(kind="raas", budget=32, page_size=16), n_ctx=64, n_threads=2)
    native.pin(eng.ctx, 0, 31)
    eng.prefill(list(range(5, 36)), pin=False)  # 31 pinned cells: no page can ever be freed
    eng.decode_one_token(5)
    with pytest.raises(RaasError, match="KV budget 32 cannot take 1 more tokens"):
        eng.decode_one_token(6)
    assert "KV budget" in native.last_error()
    # a decode that fails for another reason (a position gap) must not report the old reason
    assert _raw_decode(eng, 5, 1000) != 0
    assert native.last_error() == ""
    eng.close()


def test_null_output_pointers_are_never_written(tiny_llama):
    path, _ = tiny_llama
    code = textwrap.dedent(f"""
        from raas_local import native
        from raas_local.engine import Engine
        from raas_local.policies import CachePolicy
        eng = Engine({str(path)!r}, policy=CachePolicy(kind="raas", budget=32, page_size=4), n_ctx=64, n_threads=2)
        eng.prefill([5, 6, 7])
        for t in range(40):
            eng.decode_one_token(5 + t % 7)
        n_pages = native._get_pages(eng.ctx, 0, None, 8)
        n_scores = native._get_scores(eng.ctx, 0, None, None, 8)
        n_ev = native._get_evicted(eng.ctx, 0, None, 8)
        rc = native._get_stats(eng.ctx, 0, None)
        print(n_pages, n_scores - eng.cache_stats().used, n_ev, rc)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    n_pages, n_scores, n_ev, rc = map(int, r.stdout.split())
    assert n_pages > 0 and n_scores == 0 and n_ev >= 0 and rc < 0


@pytest.mark.parametrize("kind", ["streaming", "h2o", "quest"])
def test_refusals_name_the_policy_asked_for(tiny_gemma3, kind):
    with pytest.raises(PolicyError, match=rf"^policy {kind} cannot serve gemma3: .*iSWA"):
        Engine(tiny_gemma3, policy=CachePolicy(kind=kind, budget=64))


def test_a_decode_that_fails_after_evicting_leaves_the_page_table_matching_the_cache(tiny_llama):
    path, _ = tiny_llama
    eng = Engine(path, policy=CachePolicy(kind="raas", budget=32, page_size=4), n_ctx=64, n_threads=2)
    eng.prefill([5, 6, 7])
    for t in range(40):
        eng.decode_one_token(5 + t % 7)
    while eng.cache_stats().used < 32:
        eng.decode_one_token(5)
    # abort the graph computation: the policy has freed a page for this batch by then
    abort = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p)(lambda _: True)
    llama_cpp.llama_set_abort_callback(eng.ctx, abort, None)
    rc = _raw_decode(eng, 5, eng.position)
    llama_cpp.llama_set_abort_callback(eng.ctx, ctypes.cast(None, type(abort)), None)
    assert rc == 2 and eng.last_evicted()
    eng.decode_one_token(6)  # the next decode places the same position again
    cached = set(eng.last_scores())
    pages = eng.page_table()
    in_pages = set()
    for a, b in zip(pages, pages[1:]):
        assert a.last_pos < b.first_pos
    for pg in pages:
        span = set(range(pg.first_pos, pg.last_pos + 1))
        assert span <= cached and pg.n_cells == len(span), pg
        in_pages |= span
    assert in_pages == cached - {0, 1, 2}
    assert eng.cache_stats().used == len(cached) <= 32
    eng.close()


@pytest.mark.parametrize("field,value,msg", [
    ("head_agg", 2, r"head aggregation must be sum \(0\) or max \(1\), got 2"),
    ("page_score", 3, r"page score must be max \(0\), mean \(1\) or sum \(2\), got 3"),
    ("skip_layers", -1, "skipped layers and protected pages must be >= 0"),
    ("protect_pages", 3, "budget 64 is below 5 pages: two to decode in and 3 protected"),
])
def test_the_c_api_refuses_raas_parameters_out_of_range(tiny_llama, field, value, msg):
    """The C API checks the raas parameters itself: a caller other than raas_local gets a reason, not a crash."""
    path, _ = tiny_llama
    eng = Engine(path, policy=CachePolicy(kind="raas", budget=64, page_size=16), n_ctx=64, n_threads=2)
    p = native._default_params()
    p.kind, p.budget, p.page_size = 1, 64, 16
    setattr(p, field, value)
    assert native._set_policy(eng.ctx, ctypes.byref(p)) == -3
    assert re.search(msg, native.last_error()), native.last_error()
    eng.close()
