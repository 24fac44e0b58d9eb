"""The speed suite: decode tok/s and KV memory at a given context length.

For each length N and policy, the cache is first brought to the state it has
after N tokens (bench/fill.py: dense prefills all N; evicting policies pin a
short prompt and take the rest as decode pages, evicting as they go), then a
window of tokens is decoded one at a time and timed. Decode cost depends on the
cells attended, not on how they got there, so the window's tok/s is the decode
speed at length N. The policies of one length are measured side by side: their
timed windows interleave (measure_length); each policy's median is reported.
At a length beyond the budget a dense engine holding only ``budget`` tokens
runs beside them too (``dense_at_budget``): an evicting policy attends that
many cells, so this is its physical limit, and the ratio to it is read inside
one interleaved measurement, not across lengths measured minutes apart.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raas_local.bench import plots, report
from raas_local.bench.fill import dense_cells, fill
from raas_local.bench.plan import Plan, common_settings, selected_per_length
from raas_local.bench.variants import policy_name
from raas_local.engine import Engine
from raas_local.policies import CachePolicy, Policy


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
    dense_at_budget: float | None = None  # tok/s of dense holding `budget` tokens, measured beside this one


def time_window(engine: Engine, n_tokens: int) -> float:
    """Greedy-decode n_tokens one at a time; returns tok/s."""
    tok = int(np.argmax(engine.logits()))
    t0 = time.perf_counter()
    for _ in range(n_tokens):
        engine.decode_one_token(tok)
        tok = int(np.argmax(engine.logits()))
    return n_tokens / (time.perf_counter() - t0)


def measure_length(model, policies: list[Policy], length: int, window: int, reps: int, budget: int | None = None,
                   **engine_kw) -> list[SpeedRecord]:
    """Every policy at one length, side by side: all engines filled first, then their timed windows
    interleaved, the order rotating each repetition, so that machine noise, frequency drift and
    warm-up fall on every policy alike (measured one policy after the other, the first one
    measured read several percent slow). All the engines are loaded at once: one model, one
    context per policy. With ``length`` > ``budget``, dense filled to ``budget`` runs beside them
    and every record carries its tok/s."""
    engines: list[Engine] = []
    runs = [(pol, length) for pol in policies]
    if budget is not None and length > budget:
        runs.append((CachePolicy(kind="dense"), budget))
    try:
        for pol, n in runs:
            n_ctx = None if pol.evicts else dense_cells(n, window * reps)
            engines.append(Engine(model=model, policy=pol, n_ctx=n_ctx, **engine_kw))
            fill(engines[-1], pol, n)
        rates: list[list[float]] = [[] for _ in engines]
        for r in range(reps):
            for i in (np.arange(len(engines)) + r) % len(engines):
                rates[i].append(time_window(engines[i], window))
        medians = [round(statistics.median(rs), 2) for rs in rates]
        flat = medians[-1] if len(runs) > len(policies) else None
        out = []
        for pol, eng, tps in zip(policies, engines, medians):
            s = eng.cache_stats()
            out.append(SpeedRecord("speed", pol.kind, pol.budget, length, tps, s.used, s.kv_bytes, s.evictions, flat))
        return out
    finally:
        for eng in engines:
            eng.close()


# -- the suite ----------------------------------------------------------------------------------


def run(plan: Plan, store, bars) -> None:
    todo = [(n, p) for n, p in plan.length_items() if not store.has(plan.key("speed", p, n))]
    if not todo:
        return
    bars.start_suite("speed", len(todo))
    for n in dict.fromkeys(n for n, _ in todo):
        policies = [p for m, p in todo if m == n]
        bars.item(f"speed length {n}: {', '.join(map(policy_name, policies))} side by side")
        for pol, rec in zip(policies, measure_length(plan.model, policies, n, plan.window, plan.reps, plan.budget,
                                                     **plan.engine_kw)):
            rec = plan.stamp(rec, pol)
            store.add(rec)
            bars.item_done(f"speed {report.name(rec)} length {n}: {rec['tok_per_s']:.1f} tok/s, "
                           f"{rec['kv_cells']} KV cells, {rec['evictions']} evictions")


def selected(plan: Plan, store) -> list[dict]:
    return selected_per_length(plan, store, "speed")


def settings(plan: Plan) -> str:
    return (f"{common_settings(plan)}; budget {plan.budget}; lengths {', '.join(map(str, plan.lengths))}; "
            f"{plan.window} decode steps timed x {plan.reps}, median")


def outputs(plan: Plan, records: list[dict]) -> tuple[str, list[str]]:
    plot(records, plan.out / "speed.png")
    return table(records), targets(records, plan.budget)


def table(records: list[dict]) -> str:
    """Markdown: one row per length, tok/s and KV per policy, and raas/dense ratios."""
    names = report.series_order(records)
    lengths = sorted({r["length"] for r in records})
    by = {(report.name(r), r["length"]): r for r in records}
    head = ["length"] + [f"{p} tok/s" for p in names] + [f"{p} KV cells (MiB)" for p in names]
    dense = next((p for p in names if p == "dense"), None)
    others = [p for p in names if p != dense]
    if dense:
        head += [f"{p} / dense" for p in others]
    beside = any(r.get("dense_at_budget") for r in records)  # records from before it lack the field
    if beside:
        head += [f"{p} / dense at budget, beside" for p in others]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in lengths:
        cells = [str(n)]
        cells += [f"{by[(p, n)]['tok_per_s']:.1f}" if (p, n) in by else "-" for p in names]
        cells += [f"{by[(p, n)]['kv_cells']} ({by[(p, n)]['kv_bytes'] / 2**20:.1f})" if (p, n) in by else "-" for p in names]
        if dense:
            for p in others:
                a, b = by.get((p, n)), by.get((dense, n))
                cells.append(f"{a['tok_per_s'] / b['tok_per_s']:.2f}x" if a and b else "-")
        if beside:
            for p in others:
                a = by.get((p, n))
                cells.append(f"{a['tok_per_s'] / a['dense_at_budget']:.2f}x" if a and a.get("dense_at_budget") else "-")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def targets(records: list[dict], budget: int) -> list[str]:
    """The issue's targets, each as a line with the measured ratio; nothing is asserted."""
    by = {(r["policy"], r["length"]): r for r in records}
    lines = []

    def ratio(a, b):
        return by[a]["tok_per_s"] / by[b]["tok_per_s"] if a in by and b in by else None

    checks = [(f"raas-{budget} at 8192 >= 3x dense at 8192", ratio(("raas", 8192), ("dense", 8192)), 3.0)]
    below = [n for (p, n) in by if p == "dense" and n < budget]
    if below:  # below the budget nothing is evicted: what is left is the policy's own per-token cost
        n = max(below)
        for kind in ("raas", "streaming"):
            checks.append((f"{kind} >= 0.98x dense at {n} (< budget)", ratio((kind, n), ("dense", n)), 0.98))
    longest = max((n for (p, n) in by if p == "raas"), default=None)
    if longest is not None and longest > budget:  # the physical limit: attending `budget` cells
        rec = by[("raas", longest)]
        if rec.get("dense_at_budget"):
            checks.append((f"raas at {longest} >= 0.95x dense at {budget} (flat; side by side)",
                           rec["tok_per_s"] / rec["dense_at_budget"], 0.95))
        else:  # a record from before dense_at_budget: the two lengths were measured apart
            checks.append((f"raas at {longest} >= 0.95x dense at {budget} (flat; measured apart)",
                           ratio(("raas", longest), ("dense", budget)), 0.95))
    for text, r, target in checks:
        if r is not None:
            lines.append(f"{'met' if r >= target else 'MISSED'}: {text}: {r:.2f}x")
    lines.append(report.over_budget_check(records))
    return lines


def plot(records: list[dict], path: Path, title: str = "Decode speed and KV memory vs context length") -> None:
    fig, (a, b) = plots.figure(2, title)
    plots.lines(a, records, "length", "tok_per_s")
    a.set_ylabel("decode tok/s")
    plots.lines(b, records, "length", "kv_bytes", scale=plots.MIB)
    b.set_ylabel("KV cache (MiB)")
    for ax in (a, b):
        ax.set_ylim(bottom=0)  # from zero: ratios read true
        plots.log2_x(ax, [r["length"] for r in records], "context length (tokens)")
        ax.legend()
    fig.savefig(path, dpi=100)
