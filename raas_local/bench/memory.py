"""The memory suite: KV cells and bytes held after N tokens, per policy.

No timing: the cache is filled exactly as the speed suite fills it
(bench/fill.py) and its statistics are read. Dense holds every token, so its
cells equal the length; an evicting policy holds at most its budget. Bytes are
cells times the model's bytes per cell (K and V of every layer at the cache's
element type), the same figure `raas-local run` reports.

Each record also carries the scheduler's compute buffer: the graph's working
memory, reserved for the largest (prefill) ubatch over the whole context, so
it is the policy's peak beside the cache at prefill.
"""

from __future__ import annotations

from dataclasses import dataclass

from raas_local import native
from raas_local.bench.fill import dense_cells, fill, record_budget
from raas_local.engine import Engine
from raas_local.policies import CachePolicy


@dataclass
class MemoryRecord:
    suite: str
    policy: str
    budget: int | None
    length: int
    kv_cells: int
    kv_bytes: int
    kv_bytes_dense: int   # what a dense cache would hold after the same tokens
    evictions: int
    compute_bytes: int = 0  # scheduler compute buffer (prefill's worst case)


def measure_memory(model, policy: CachePolicy, length: int, **engine_kw) -> MemoryRecord:
    evicts = policy.evicts
    eng = Engine(model=model, policy=policy, n_ctx=None if evicts else dense_cells(length), **engine_kw)
    try:
        fill(eng, policy, length)
        s = eng.cache_stats()
        return MemoryRecord("memory", policy.kind, record_budget(policy), length,
                            s.used, s.kv_bytes, s.kv_bytes_dense, s.evictions, native.compute_buffer_size(eng.ctx))
    finally:
        eng.close()
