"""The C++ policies make exactly the evictions of their plain-Python references.

(a) RaaS on the embedded model over 2000 decode steps at budgets 128 and 256,
fed the scores that last_scores() exposes (streaming and h2o: 600 steps); and
every policy on random score streams (hypothesis) injected with
llama_raas_override_scores on a tiny model, mixed with unpinned prefills of k
tokens in one batch (several pages evicted at once) and pinned prefills (new
chat turns that cut the open page), streaming's sinks reaching past a short
prompt.
(c) invariants at every step: used <= L, pinned (and sink) cells never freed,
only full, non-newest pages freed; for RaaS each freed page had the oldest
(ts, first position).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from raas_local import native
from raas_local.engine import Engine
from raas_local.errors import PolicyError, RaasError
from raas_local.policies import CachePolicy
from reference.h2o_policy import H2OReference
from reference.raas_policy import RaasReference
from reference.streaming_policy import StreamingReference

PROMPT = "Question: A train travels 60 km in 1.5 hours. What is its average speed? Let's think step by step.\n"


def make(kind: str, budget: int, page_size: int, ratio: float = 0.5, n_sink: int = 4, heavy: float = 0.5,
         page_score: str = "max", protect_pages: int = 0):
    """The policy and its independent reference."""
    policy = CachePolicy(kind=kind, budget=budget, page_size=page_size, refresh_ratio=ratio, n_sink=n_sink, heavy_ratio=heavy,
                         page_score=page_score, protect_pages=protect_pages)
    if kind == "raas":
        return policy, RaasReference(budget, page_size, ratio, page_score, protect_pages)
    if kind == "streaming":
        return policy, StreamingReference(budget, page_size, n_sink)
    return policy, H2OReference(budget, heavy)


def check_invariants(eng, prev_table, evicted, n_prompt, budget):
    s = eng.cache_stats()
    page_size = eng.policy.page_size
    assert s.used <= budget
    assert s.pinned == n_prompt, "a pinned cell was freed"
    assert s.used == s.pinned + sum(p.n_cells for p in eng.page_table())
    newest_before = s.newest_pos - 1  # the token just placed is newest; before it, newest was pos-1
    for first in evicted:
        page = next(p for p in prev_table if p.first_pos == first)
        assert page.closed and page.n_cells == page_size, "a partial page was freed"
        assert not (page.first_pos <= newest_before <= page.last_pos), "the newest page was freed"
        if eng.policy.kind != "raas":
            continue
        candidates = [p for p in prev_table if p.closed and not (p.first_pos <= newest_before <= p.last_pos)]
        assert (page.ts, page.first_pos) == min((p.ts, p.first_pos) for p in candidates)
        prev_table = [p for p in prev_table if p.first_pos != first]


@pytest.mark.slow
@pytest.mark.parametrize("kind,budget,steps", [("raas", 128, 2000), ("raas", 256, 2000), ("streaming", 128, 600), ("h2o", 128, 600)])
def test_embedded_model_long_chain(kind, budget, steps):
    run_long_chain(kind, budget, steps)


def run_long_chain(kind: str, budget: int, steps: int, **engine_kw) -> None:
    """engine_kw (n_gpu_layers, flash_attn) lets the GPU lane run the same chain."""
    policy, ref = make(kind, budget, 16)
    eng = Engine(policy=policy, **engine_kw)
    tokens = eng.tokenize(PROMPT)
    n_prompt = len(tokens)
    eng.prefill(tokens, pin=True)
    ref.pin(0, n_prompt)
    ref.place(list(range(n_prompt)))
    tok = int(np.argmax(eng.logits()))
    n_evicted = 0
    for _ in range(steps):
        pos = eng.position
        prev_table = eng.page_table()
        expected = ref.before_place(1)
        eng.decode_one_token(tok)
        evicted = eng.last_evicted()
        assert evicted == expected, f"step {eng.cache_stats().step}"
        check_invariants(eng, prev_table, evicted, n_prompt, budget)
        ref.place([pos])
        scores = eng.last_scores()
        if kind == "streaming":
            assert scores == {}  # needs no scores: none are computed
        else:
            assert set(scores) == ref.cached
        assert eng.cache_stats().used == len(ref.cached)
        ref.observe(scores)
        assert [(p.first_pos, p.last_pos, p.ts) for p in eng.page_table()] == ref.table()
        n_evicted += len(evicted)
        tok = int(np.argmax(eng.logits()))
    assert n_evicted > 20
    assert eng.cache_stats().evictions == n_evicted
    eng.close()


@pytest.fixture(scope="module")
def tiny_engine(tiny_llama):
    path, _ = tiny_llama
    eng = Engine(path, policy=CachePolicy(kind="raas", budget=64, page_size=4), n_ctx=256)
    yield eng
    eng.close()


def fits(ref, n: int) -> bool:
    """Whether the reference can make room for n more tokens (tried on a copy)."""
    trial = copy.deepcopy(ref)
    try:
        trial.before_place(n)
    except (RuntimeError, IndexError):  # no closed page left to free (raas raises the one, the others the other)
        return False
    return True


# one op: a run of k single-token decode steps, an unpinned prefill of k tokens
# in one batch (the bench fills contexts so), or a pinned prefill of k tokens
# (a new chat turn: it cuts the open page and evicts to make room)
OPS = st.lists(st.tuples(st.sampled_from(["decode", "decode", "unpinned", "pinned"]), st.integers(1, 24)), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(["raas", "streaming", "h2o"]),
    page_size=st.integers(1, 8),
    extra=st.integers(0, 64),
    n_prompt=st.integers(1, 12),
    n_sink=st.integers(0, 8),  # streaming: may reach past the prompt into decoded tokens
    ratio=st.sampled_from([0.1, 0.25, 0.3, 0.5, 0.75, 1.0]),
    ops=OPS,
    seed=st.integers(0, 2**32 - 1),
    # few levels -> many ties; powers of two keep a page's float32 sum exact in any cell order
    levels=st.sampled_from([2, 4, 1024]),
    page_score=st.sampled_from(["max", "max", "mean", "sum"]),  # raas's free choices (issue 13)
    protect_pages=st.sampled_from([0, 0, 1, 2, 4]),
)
# streaming's sinks reaching past a short prompt: drawn in maybe one example of 60, so also always run
# (a build that did not pin them passed the drawn examples)
@example(kind="streaming", page_size=2, extra=4, n_prompt=2, n_sink=6, ratio=0.5, ops=[("decode", 24)], seed=0,
         levels=2, page_score="max", protect_pages=0)
def test_random_score_streams(tiny_engine, kind, page_size, extra, n_prompt, n_sink, ratio, ops, seed, levels,
                              page_score, protect_pages):
    if kind != "raas":
        page_score, protect_pages = "max", 0
    budget = n_prompt + (2 + protect_pages) * page_size + extra
    eng = tiny_engine
    policy, ref = make(kind, budget, page_size, ratio=ratio, n_sink=n_sink, heavy=ratio if ratio < 1 else 0.5,
                       page_score=page_score, protect_pages=protect_pages)
    eng.set_policy(policy)
    rng = np.random.default_rng(seed)
    prompt = [int(t) for t in rng.integers(3, 270, n_prompt)]
    eng.prefill(prompt, pin=True)
    ref.pin(0, n_prompt)
    ref.place(list(range(n_prompt)))
    for op, k in ops:
        steps, n = (k, 1) if op == "decode" else (1, k)
        for _ in range(steps):
            pos = eng.position
            tokens = [int(t) for t in rng.integers(3, 270, n)]
            if op == "pinned" and policy.min_budget(eng.cache_stats().pinned + n) > budget:
                with pytest.raises(PolicyError, match="pinned KV cells"):
                    eng.prefill(tokens, pin=True)
                assert eng.position == pos  # refused before anything was placed
                continue
            if op == "pinned":
                ref.pin(pos, pos + n)
            if not fits(ref, n):
                # too many tokens for the room decode pages can give (sinks past the prompt can take
                # it all): the engine refuses like the reference, after freeing the same pages
                with pytest.raises(RuntimeError if kind == "raas" else IndexError):
                    ref.before_place(n)
                with pytest.raises(RaasError, match="no full decode page to free"):
                    eng.prefill(tokens, pin=op == "pinned")
                assert eng.last_evicted() == ref.freed
                event(f"{op} prefill refused: no page to free")
                assert eng.position == pos and eng.cache_stats().used == len(ref.cached)
                continue
            expected = ref.before_place(n)
            if n > 1 and len(expected) > 1:
                event(f"{op} prefill freed several pages at once")
            if op == "pinned" and ref.pages and not ref.pages[-1].closed:
                event("pinned prefill cut an open page")
            if kind == "streaming" and n_sink > n_prompt and pos < n_sink:
                event("streaming sink past the prompt placed")
            ref.place(list(range(pos, pos + n)))
            scores = {p: float(np.float32(rng.integers(0, levels) / levels)) for p in ref.cached}
            native.override_scores(eng.ctx, scores)
            eng.prefill(tokens, pin=op == "pinned")
            assert eng.last_evicted() == expected, (op, n)
            assert eng.last_scores() == scores
            if op != "pinned":  # a step with no decode token observes nothing
                ref.observe(scores)
            assert [(p.first_pos, p.last_pos, p.ts) for p in eng.page_table()] == ref.table()
            s = eng.cache_stats()
            assert s.used == len(ref.cached) <= budget
            assert s.pinned == sum(ref.pinned(p) for p in ref.cached)
