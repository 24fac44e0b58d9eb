"""PanelState: the cache panel's input, a plain frozen snapshot.

Decision: the worker thread builds it (the engine is not thread-safe, so only
the thread that generates may read ``page_table()``), and the UI thread only
renders it. Being plain data it also makes the panel's snapshot tests
deterministic: they feed a fixed PanelState instead of a running engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PageView:
    first_pos: int
    age: int        # decode steps since the page was last refreshed (step - ts)
    closed: bool    # full; the open page holds the newest position and is never evicted


@dataclass(frozen=True)
class PanelState:
    policy: str = "raas"
    budget: int = 0          # cells the sequence may use (dense: the context size)
    page_size: int = 16
    refresh_ratio: float | None = 0.5   # raas only
    evicts: bool = True
    used: int = 0
    pinned: int = 0
    decode_cells: int = 0
    pages: tuple[PageView, ...] = ()
    evictions: int = 0       # pages freed so far
    evicted_cells: int = 0
    newest_pos: int = -1
    step: int = 0
    kv_bytes: int = 0
    kv_bytes_dense: int = 0
    generated: int = 0       # tokens of the current (or last) reply
    tok_per_s: float | None = None  # rate over the last update interval; None = no new sample
    status: str = "idle"
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def free(self) -> int:
        return max(self.budget - self.used, 0)

    @classmethod
    def from_engine(cls, engine, stats=None, *, generated: int = 0, tok_per_s: float | None = None,
                    status: str = "idle") -> "PanelState":
        """Read the engine now. Call only from the thread that owns the engine.
        ``stats`` (GenStats) saves a second native stats call while streaming."""
        c = stats.cache if stats is not None else engine.cache_stats()
        pol = engine.policy
        evicts = pol.evicts
        pages = tuple(PageView(p.first_pos, max(c.step - p.ts, 0), p.closed) for p in engine.page_table()) if evicts else ()
        return cls(
            policy=pol.kind, budget=c.budget if evicts else c.n_cells, page_size=pol.page_size,
            refresh_ratio=getattr(pol, "refresh_ratio", None), evicts=evicts, used=c.used, pinned=c.pinned,
            decode_cells=c.decode_cells if evicts else max(c.used - c.pinned, 0), pages=pages,
            evictions=c.evictions, evicted_cells=c.evicted_cells, newest_pos=c.newest_pos, step=c.step,
            kv_bytes=c.kv_bytes, kv_bytes_dense=c.kv_bytes_dense, generated=generated,
            tok_per_s=tok_per_s, status=status,
        )
