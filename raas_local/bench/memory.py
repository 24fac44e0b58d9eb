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
from pathlib import Path

from raas_local import native
from raas_local.bench import plots, report
from raas_local.bench.fill import dense_cells, fill
from raas_local.bench.plan import Plan, common_settings, measure_per_length, selected_per_length
from raas_local.engine import Engine
from raas_local.policies import Policy


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


def measure_memory(model, policy: Policy, length: int, **engine_kw) -> MemoryRecord:
    evicts = policy.evicts
    eng = Engine(model=model, policy=policy, n_ctx=None if evicts else dense_cells(length), **engine_kw)
    try:
        fill(eng, policy, length)
        s = eng.cache_stats()
        return MemoryRecord("memory", policy.kind, policy.budget, length, s.used, s.kv_bytes, s.kv_bytes_dense,
                            s.evictions, native.compute_buffer_size(eng.ctx))
    finally:
        eng.close()


# -- the suite ----------------------------------------------------------------------------------


def run(plan: Plan, store, bars) -> None:
    measure_per_length(plan, store, bars, "memory",
                       lambda pol, n: measure_memory(plan.model, pol, n, **plan.engine_kw),
                       lambda r: f"{r['kv_cells']} KV cells, {r['kv_bytes'] / 2**20:.1f} MiB")


def selected(plan: Plan, store) -> list[dict]:
    return selected_per_length(plan, store, "memory")


def settings(plan: Plan) -> str:
    return f"{common_settings(plan)}; budget {plan.budget}; lengths {', '.join(map(str, plan.lengths))}"


def outputs(plan: Plan, records: list[dict]) -> tuple[str, list[str]]:
    plot(records, plan.out / "memory.png")
    return table(records) + "\n\n" + compute_table(records), checks(records)


def table(records: list[dict]) -> str:
    """Markdown: one row per length, KV cells (MiB) per policy, and each policy's share of dense."""
    names = report.series_order(records)
    lengths = sorted({r["length"] for r in records})
    by = {(report.name(r), r["length"]): r for r in records}
    dense = next((n for n in names if n == "dense"), None)
    others = [n for n in names if n != dense]
    head = ["length"] + [f"{n} KV cells (MiB)" for n in names] + ([f"{n} / dense" for n in others] if dense else [])
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in lengths:
        cells = [str(n)]
        for s in names:
            r = by.get((s, n))
            cells.append(f"{r['kv_cells']} ({r['kv_bytes'] / 2**20:.1f})" if r else "-")
        if dense:
            for s in others:
                a, b = by.get((s, n)), by.get((dense, n))
                cells.append(f"{a['kv_bytes'] / b['kv_bytes']:.2f}" if a and b and b["kv_bytes"] else "-")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def compute_table(records: list[dict]) -> str:
    """Markdown: the compute buffer (prefill's peak working memory, MiB) per length and policy."""
    names = report.series_order(records)
    by = {(report.name(r), r["length"]): r for r in records}
    rows = ["| length | " + " | ".join(f"{n} compute (MiB)" for n in names) + " |", "|" + "---|" * (len(names) + 1)]
    for n in sorted({r["length"] for r in records}):
        cells = [f"{by[(s, n)].get('compute_bytes', 0) / 2**20:.1f}" if (s, n) in by else "-" for s in names]
        rows.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def checks(records: list[dict]) -> list[str]:
    """Evicting policies stay within budget; dense and quest hold every token. Stated, not asserted."""
    short = [r for r in records if not report.evicts(r) and r["kv_cells"] != r["length"]]
    return [
        report.over_budget_check(records),
        "met: dense and quest hold every token (kv_cells == length)" if not short
        else f"MISSED: dense or quest kv_cells != length in {len(short)} records",
    ]


def plot(records: list[dict], path: Path, title: str = "KV memory vs context length") -> None:
    fig, (a,) = plots.figure(1, title)
    plots.lines(a, records, "length", "kv_bytes", scale=plots.MIB)
    a.set_ylabel("KV cache (MiB)")
    a.set_ylim(bottom=0)
    plots.log2_x(a, [r["length"] for r in records], "context length (tokens)")
    a.legend()
    fig.savefig(path, dpi=100)
