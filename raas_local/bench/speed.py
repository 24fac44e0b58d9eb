"""The speed suite: decode tok/s and KV memory at a given context length.

For each length N and policy, the cache is first brought to the state it has
after N tokens, then a window of tokens is decoded one at a time and timed:
  - dense: a prompt of N tokens is prefilled (all N cells stay);
  - raas/others: a short pinned prompt, then N tokens fed as decode pages in
    batches (the policy evicts as it would have, token by token), so the cache
    holds at most the budget.
Decode cost depends on the cells attended, not on how they got there, so the
window's tok/s is the decode speed at length N. Policies alternate within each
length, and each window is repeated; the median is reported.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import numpy as np

from raas_local.engine import Engine
from raas_local.policies import CachePolicy

FILL_TEXT = (
    "Let x be the number of apples. Then 3x + 5 = 20, so 3x = 15 and x = 5. "
    "Check: 3 * 5 + 5 = 20. Next, consider the sum 1 + 2 + ... + n = n(n+1)/2; "
    "for n = 10 it is 55, for n = 100 it is 5050. "
)
PROMPT = "Solve step by step: what is the sum of the first 100 positive integers?\n"


@dataclass
class SpeedRecord:
    suite: str
    policy: str
    budget: int | None
    length: int
    tok_per_s: float
    kv_cells: int
    kv_bytes: int
    evictions: int


def fill_tokens(engine: Engine, n: int) -> list[int]:
    base = engine.tokenize(FILL_TEXT)
    reps = n // len(base) + 1
    return (base * reps)[:n]


def time_window(engine: Engine, n_tokens: int) -> float:
    """Greedy-decode n_tokens one at a time; returns tok/s."""
    tok = int(np.argmax(engine.logits()))
    t0 = time.perf_counter()
    for _ in range(n_tokens):
        engine.decode_one_token(tok)
        tok = int(np.argmax(engine.logits()))
    return n_tokens / (time.perf_counter() - t0)


def measure(model, policy: CachePolicy, length: int, window: int, reps: int, **engine_kw) -> SpeedRecord:
    evicts = policy.evicts
    n_ctx = None if evicts else length + window * reps + 64
    eng = Engine(model=model, policy=policy, n_ctx=n_ctx, **engine_kw)
    try:
        prompt = eng.tokenize(PROMPT)
        if evicts:
            eng.prefill(prompt, pin=True)
            # batches of a quarter budget leave the policy room to evict before each
            eng.prefill(fill_tokens(eng, max(length - len(prompt), 0)), pin=False, chunk=max(policy.budget // 4, 1))
        else:
            eng.prefill(prompt + fill_tokens(eng, max(length - len(prompt), 0)), pin=True)
        rates = [time_window(eng, window) for _ in range(reps)]
        s = eng.cache_stats()
        return SpeedRecord("speed", policy.kind, policy.budget if evicts else None, length,
                           round(statistics.median(rates), 2), s.used, s.kv_bytes, s.evictions)
    finally:
        eng.close()


def run_speed(model, policies: list[CachePolicy], lengths: list[int], window: int = 32, reps: int = 3,
              progress=None, **engine_kw) -> list[dict]:
    out = []
    for length in lengths:
        for pol in policies:
            rec = measure(model, pol, length, window, reps, **engine_kw)
            out.append(asdict(rec))
            if progress:
                progress(rec)
    return out
