"""The speed suite: decode tok/s and KV memory at a given context length.

For each length N and policy, the cache is first brought to the state it has
after N tokens (bench/fill.py: dense prefills all N; evicting policies pin a
short prompt and take the rest as decode pages, evicting as they go), then a
window of tokens is decoded one at a time and timed. Decode cost depends on the
cells attended, not on how they got there, so the window's tok/s is the decode
speed at length N. Policies alternate within each length, and each window is
repeated; the median is reported.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

from raas_local.bench.fill import dense_cells, fill, record_budget
from raas_local.engine import Engine
from raas_local.policies import CachePolicy


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
    n_ctx = None if evicts else dense_cells(length, window * reps)
    eng = Engine(model=model, policy=policy, n_ctx=n_ctx, **engine_kw)
    try:
        fill(eng, policy, length)
        rates = [time_window(eng, window) for _ in range(reps)]
        s = eng.cache_stats()
        return SpeedRecord("speed", policy.kind, record_budget(policy), length,
                           round(statistics.median(rates), 2), s.used, s.kv_bytes, s.evictions)
    finally:
        eng.close()

