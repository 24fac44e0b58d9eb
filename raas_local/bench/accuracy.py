"""bench accuracy: solve a problem file through every policy and budget, scored as `raas-local solve` scores.

Each (policy, budget) run writes the same per-problem records as `raas-local
solve` (answer extraction, equivalence check) to
OUT/accuracy/<problems stem>-<sha8>/<model>.<policy>-<budget>.s<settings sha6>.max<N>.results.jsonl,
one fsynced line per problem, so a stopped run resumes at the next problem; the
bench record is the summary of that file. Generation is greedy (temperature 0)
so that every policy answers the same question the same way until its cache
makes it diverge: differences in accuracy are the cache's doing, not sampling's.
Each problem is a fresh conversation; the model's own prompt template from
models.toml is used when it has one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from raas_local.bench import plots
from raas_local.bench.plan import Plan, check_prompt_fits, common_settings
from raas_local.bench import variants
from raas_local.bench.variants import policy_name, series
from raas_local.errors import InputError


@dataclass
class AccuracyRecord:
    suite: str
    policy: str
    budget: int | None
    length: int            # the generation limit (max tokens per problem)
    problems: str          # file name and sha256 prefix: which problem set
    n: int
    correct: int
    accuracy: float
    answered: int
    mean_generated_tokens: float | None
    peak_kv_cells: int | None
    tok_per_s: float | None
    evictions: int


@dataclass
class ProblemSet:
    path: Path
    problems: list
    ident: str             # "<name> (<sha8>)"
    folder_name: str       # "<stem>-<sha8>"

    @classmethod
    def load(cls, path: str | Path, limit: int | None = None) -> "ProblemSet":
        import sys

        from raas_local.solve.problems import load_problems

        path = Path(path)
        problems, errors = load_problems(path)
        for e in errors:
            print(f"raas-local: warning: {e}", file=sys.stderr)
        if limit is not None:
            problems = problems[:limit]
        if not problems:
            raise InputError(f"no valid problems in {path}")
        sha = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
        suffix = f", first {limit}" if limit is not None else ""
        return cls(path, problems, f"{path.name} ({sha}{suffix})", f"{path.stem}-{sha}" + (f"-first{limit}" if limit else ""))


def results_path(out: Path, pset: ProblemSet, model_label: str, policy, max_tokens: int) -> Path:
    """The run's per-problem file; its name carries a digest of every policy setting, so that a
    changed default never resumes from answers given under the old one."""
    digest = hashlib.sha256(variants.settings_key(variants.settings(policy)).encode()).hexdigest()[:6]
    return (out / "accuracy" / pset.folder_name
            / f"{model_label}.{policy_name(policy)}.s{digest}.max{max_tokens}.results.jsonl")


def pending(path: Path, pset: ProblemSet) -> list:
    from raas_local.solve.results import read_records

    done = {str(r["id"]) for r in read_records(path)} if path.exists() else set()
    return [p for p in pset.problems if p.id not in done]




def solve_run(eng, policy, pset: ProblemSet, path: Path, max_tokens: int, on_step=None):
    """Solve what `path` lacks with `policy`, ``eng.n_seq`` problems at a time (as `solve --parallel`);
    returns (records, interrupted)."""
    from raas_local.solve.results import ResultWriter
    from raas_local.sampling import Sampling
    from raas_local.solve.runner import engine_generate_fn, engine_generate_many, one_at_a_time, prompting, solve

    if eng.policy != policy:
        eng.set_policy(policy)
    template, think_tags = prompting(eng)
    sampling = Sampling(max_tokens=max_tokens, temperature=0.0)
    many = engine_generate_many(eng, sampling) if eng.n_seq > 1 else one_at_a_time(engine_generate_fn(eng, sampling))
    total = len(pset.problems)

    def counted(items):
        for key, res in many(items):
            counted.done += 1
            if on_step:
                on_step(counted.done, total)
            yield key, res

    with ResultWriter(path) as writer:
        counted.done = len(writer.done_ids & {p.id for p in pset.problems})
        outcome = solve(pset.problems, writer, None, generate_many=counted, prompt_template=template, progress=False,
                        think_tags=think_tags)
    return outcome.records, outcome.interrupted


def summarize(records: list[dict], policy, pset: ProblemSet, max_tokens: int) -> AccuracyRecord:
    from raas_local.solve.results import compute_metrics

    m = compute_metrics(records, policy.kind, policy.budget, None)
    return AccuracyRecord(
        suite="accuracy", policy=policy.kind, budget=policy.budget, length=max_tokens, problems=pset.ident,
        n=m["n"], correct=m["correct"], accuracy=m["accuracy"], answered=m["answered"],
        mean_generated_tokens=m["mean_generated_tokens"], peak_kv_cells=m["peak_kv_cells"], tok_per_s=m["tok_per_s"],
        evictions=sum(int(r.get("evictions") or 0) for r in records),
    )


# -- the suite ----------------------------------------------------------------------------------


def run(plan: Plan, store, bars) -> None:
    from raas_local.engine import Engine
    from raas_local.solve.results import read_records
    from raas_local.solve.plan import dense_context_cells
    from raas_local.solve.runner import prompting, render_prompt

    pset = plan.problems
    items = plan.budget_items()
    path = {policy_name(p): results_path(plan.out, pset, plan.label, p, plan.max_tokens) for p in items}
    if store.force:
        for p in items:
            path[policy_name(p)].unlink(missing_ok=True)
    todo = [p for p in items if pending(path[policy_name(p)], pset)]
    if todo:
        bars.start_suite("accuracy", len(todo))
        with Engine(model=plan.model, policy=todo[0], n_ctx_dense=dense_context_cells(pset.problems, plan.max_tokens),
                    n_seq=plan.solve_parallel, **plan.engine_kw) as eng:
            template, _ = prompting(eng)
            longest = max(len(eng.tokenize(render_prompt(template, p.problem))) for p in pset.problems)
            # every budget against the longest prompt, before the long work starts
            check_prompt_fits(todo, longest, "the longest problem prompt")
            for pol in todo:
                name = policy_name(pol)
                bars.item(f"accuracy {name}")
                records, interrupted = solve_run(eng, pol, pset, path[name], plan.max_tokens, on_step=bars.steps)
                if interrupted:
                    raise KeyboardInterrupt  # the solved problems are on disk; a rerun resumes
                rec = summarize(records, pol, pset, plan.max_tokens)
                store.add(plan.stamp(rec, pol))
                bars.item_done(f"accuracy {name}: {rec.correct}/{rec.n} ({rec.accuracy:.1%}), "
                               f"mean {rec.mean_generated_tokens:.0f} tokens, peak {rec.peak_kv_cells} KV cells")
    # finished runs (this time or before) are summarized from their files
    for p in items:
        if not pending(path[policy_name(p)], pset):
            store.add(plan.stamp(summarize(read_records(path[policy_name(p)]), p, pset, plan.max_tokens), p))


def selected(plan: Plan, store) -> list[dict]:
    keys = [plan.key("accuracy", p, plan.max_tokens) for p in plan.budget_items()]
    return [r for r in (store.get(k) for k in keys) if r is not None and r.get("problems") == plan.problems.ident]


def settings(plan: Plan) -> str:
    return (f"{common_settings(plan)}; problems {plan.problems.ident}, {len(plan.problems.problems)} problems, greedy, "
            f"at most {plan.max_tokens} tokens each, scored as `raas-local solve` scores; "
            f"budgets {', '.join(map(str, plan.budgets))}")


def outputs(plan: Plan, records: list[dict]) -> tuple[str, list[str]]:
    plot(records, plan.out / "accuracy.png")
    return table(records), []


def _label(r: dict) -> str:
    return series(r["policy"], r.get("settings"))


def table(records: list[dict]) -> str:
    """Markdown: dense, then one row per policy and budget."""
    head = ["policy", "budget", "accuracy", "correct / n", "answered", "mean tokens", "peak KV cells", "evictions", "tok/s"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ordered = sorted(records, key=lambda r: (r["policy"] != "dense", r["budget"] or 0, _label(r)))

    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    for r in ordered:
        rows.append("| " + " | ".join([
            _label(r), "all" if r["budget"] is None else str(r["budget"]), f"{r['accuracy']:.1%}",
            f"{r['correct']} / {r['n']}", str(r["answered"]), num(r["mean_generated_tokens"], ".0f"),
            num(r["peak_kv_cells"], "d"), str(r["evictions"]), num(r["tok_per_s"], ".1f"),
        ]) + " |")
    return "\n".join(rows)


def plot(records: list[dict], path: Path, title: str = "Problems solved vs budget") -> None:
    fig, (a,) = plots.figure(1, title)
    policies = [r for r in records if r["policy"] != "dense"]
    plots.lines(a, policies, "budget", "accuracy", name=_label)
    for r in records:
        if r["policy"] == "dense":  # no budget: a flat line
            a.axhline(r["accuracy"], color="black", linestyle="--", label=f"dense ({r['accuracy']:.1%})")
    a.set_ylim(0.0, max([r["accuracy"] for r in records] + [0.05]) * 1.15)
    a.set_ylabel("accuracy (share of problems solved)")
    plots.log2_x(a, [r["budget"] for r in policies] or [1], "budget (KV cells)")
    a.legend()
    fig.savefig(path, dpi=100)
