"""The throughput suite: problems per minute and aggregate decode tok/s at N sequences decoded together.

For each policy and each N of --parallel (default 1,2,4,8), the problems of
--problems (default: the packaged sample set; first --limit) go through
raas_local/batch.py's continuous batching exactly as ``raas-local solve
--parallel N`` sends them (solve's prompt template, each a fresh
conversation), greedy, at most -n tokens each. Timed: the whole batch, model
load left out, prefills included. Reported: problems per minute, aggregate
tok/s (generated tokens of all sequences / wall time) and each N's ratio to
N = 1 of the same policy, dense and the others side by side. Answers are not
scored here (bench accuracy and solve do that).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from raas_local.bench import plots, report
from raas_local.bench.plan import Plan, common_settings

DEFAULT_PARALLEL = "1,2,4,8"


@dataclass
class ThroughputRecord:
    suite: str
    policy: str
    budget: int | None
    length: int             # N: sequences decoded together
    max_tokens: int
    problems: str           # which problem set
    n: int                  # problems
    generated_tokens: int
    wall_s: float
    problems_per_min: float
    tok_per_s: float
    peak_kv_cells: int      # the largest peak of one sequence


def problem_set(plan: Plan):
    from raas_local.bench.accuracy import ProblemSet
    from raas_local.solve.data import sample_path

    return plan.problems or ProblemSet.load(sample_path(), plan.limit)


def measure(plan: Plan, policy, n_seq: int, pset) -> ThroughputRecord:
    from raas_local.batch import generate_batch
    from raas_local.engine import Engine
    from raas_local.sampling import Sampling
    from raas_local.solve.plan import dense_context_cells
    from raas_local.solve.runner import prompting, render_prompt

    sampling = Sampling(max_tokens=plan.max_tokens, temperature=0.0)
    with Engine(model=plan.model, policy=policy, n_ctx_dense=dense_context_cells(pset.problems, plan.max_tokens),
                n_seq=n_seq, **plan.engine_kw) as eng:
        template, _ = prompting(eng)
        items = [(p.id, render_prompt(template, p.problem), sampling) for p in pset.problems]
        t0 = time.perf_counter()
        done = [c for _, c in generate_batch(eng, items)]
        wall = time.perf_counter() - t0
    tokens = sum(c.tokens for c in done)
    return ThroughputRecord(
        "throughput", policy.kind, policy.budget, n_seq, plan.max_tokens, pset.ident, len(done), tokens,
        round(wall, 3), round(len(done) / wall * 60, 2), round(tokens / wall, 2),
        max(c.stats.peak_kv_cells for c in done if c.stats is not None),
    )


def _key(plan: Plan, policy, n_seq: int) -> tuple:
    return plan.key("throughput", policy, n_seq)


def _matches(plan: Plan, rec: dict | None, pset) -> bool:
    return rec is not None and rec.get("max_tokens") == plan.max_tokens and rec.get("problems") == pset.ident


# -- the suite ----------------------------------------------------------------------------------


def run(plan: Plan, store, bars) -> None:
    pset = problem_set(plan)
    items = [(n, plan.policy(k)) for n in plan.parallel for k in plan.kinds]
    todo = [(n, p) for n, p in items if not (store.has(_key(plan, p, n)) and _matches(plan, store.get(_key(plan, p, n)), pset))]
    if not todo:
        return
    bars.start_suite("throughput", len(todo))
    for n, pol in todo:  # policies alternate within each N
        what = f"throughput {pol.tag} x{n}"
        bars.item(what)
        rec = plan.stamp(measure(plan, pol, n, pset), pol)
        store.add(rec)
        bars.item_done(f"{what}: {rec['problems_per_min']:.1f} problems/min, {rec['tok_per_s']:.1f} tok/s")


def selected(plan: Plan, store) -> list[dict]:
    pset = problem_set(plan)
    recs = [store.get(_key(plan, plan.policy(k), n)) for n in plan.parallel for k in plan.kinds]
    return [r for r in recs if _matches(plan, r, pset)]


def settings(plan: Plan) -> str:
    pset = problem_set(plan)
    return (f"{common_settings(plan)}; budget {plan.budget}; problems {pset.ident}, {len(pset.problems)} problems, "
            f"greedy, at most {plan.max_tokens} tokens each; N = {', '.join(map(str, plan.parallel))} sequences "
            "decoded together (continuous batching, as `raas-local solve --parallel N`); wall time of the whole "
            "set, prefills included, model load left out")


def outputs(plan: Plan, records: list[dict]) -> tuple[str, list[str]]:
    plot(records, plan.out / "throughput.png")
    return table(records), targets(records)


def table(records: list[dict]) -> str:
    """Markdown: one row per N; problems/min, tok/s and the ratio to N = 1 per policy."""
    names = report.series_order(records)
    by = {(report.name(r), r["length"]): r for r in records}
    ns = sorted({r["length"] for r in records})
    head = ["N"] + [f"{p} problems/min" for p in names] + [f"{p} tok/s" for p in names] + [f"{p} vs N=1" for p in names]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in ns:
        cells = [str(n)]
        cells += [f"{by[(p, n)]['problems_per_min']:.1f}" if (p, n) in by else "-" for p in names]
        cells += [f"{by[(p, n)]['tok_per_s']:.1f}" if (p, n) in by else "-" for p in names]
        for p in names:
            a, b = by.get((p, n)), by.get((p, 1))
            cells.append(f"{a['problems_per_min'] / b['problems_per_min']:.2f}x" if a and b else "-")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def targets(records: list[dict]) -> list[str]:
    """The issue's target, as a line with the measured ratio; nothing is asserted."""
    by = {(r["policy"], r["length"]): r for r in records}
    lines = []
    for (p, n), r in sorted(by.items()):
        if n == 8 and (p, 1) in by:
            ratio = r["problems_per_min"] / by[(p, 1)]["problems_per_min"]
            lines.append(f"{'met' if ratio >= 1.6 else 'MISSED'}: {p} at N=8 >= 1.6x the problems/min of N=1: {ratio:.2f}x")
    return lines


def plot(records: list[dict], path: Path, title: str = "Throughput vs sequences decoded together") -> None:
    fig, (a, b) = plots.figure(2, title)
    plots.lines(a, records, "length", "problems_per_min")
    a.set_ylabel("problems / min")
    plots.lines(b, records, "length", "tok_per_s")
    b.set_ylabel("aggregate tok/s")
    for ax in (a, b):
        ax.set_ylim(bottom=0)  # from zero: ratios read true
        plots.log2_x(ax, [r["length"] for r in records], "sequences decoded together (N)")
        ax.legend()
    fig.savefig(path, dpi=100)
