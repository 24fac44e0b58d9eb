"""bench accuracy: solve a problem file through every policy and budget, scored as `raas-local solve` scores.

Each (policy, budget) run writes the same per-problem records as `raas-local
solve` (answer extraction, equivalence check) to
OUT/accuracy/<problems stem>-<sha8>/<model>.<policy>-<budget>.max<N>.results.jsonl,
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

from raas_local.errors import InputError, PolicyError


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
    tag = policy.kind if policy.kind == "dense" else f"{policy.kind}-{policy.budget}"
    return out / "accuracy" / pset.folder_name / f"{model_label}.{tag}.max{max_tokens}.results.jsonl"


def pending(path: Path, pset: ProblemSet) -> list:
    from raas_local.solve.results import read_records

    done = {str(r["id"]) for r in read_records(path)} if path.exists() else set()
    return [p for p in pset.problems if p.id not in done]


def check_fits(policy, longest: int) -> None:
    """Refuse, before the first problem, a budget that the longest prompt (in tokens) leaves no room in."""
    if not policy.evicts:
        return
    need = policy.min_budget(longest)
    if need > policy.budget:
        raise PolicyError(f"the longest problem prompt has {longest} tokens: budget {policy.budget} leaves fewer than "
                          f"two pages ({need - longest} cells) to decode in; use budgets of {need} or more")


def solve_run(eng, policy, pset: ProblemSet, path: Path, max_tokens: int, on_step=None):
    """Solve what `path` lacks with `policy`; returns (records, interrupted)."""
    from raas_local.solve.results import ResultWriter
    from raas_local.solve.runner import DEFAULT_PROMPT_TEMPLATE, engine_generate_fn, solve

    if eng.policy != policy:
        eng.set_policy(policy)
    template = eng.spec.prompt_template if eng.spec is not None else DEFAULT_PROMPT_TEMPLATE
    generate = engine_generate_fn(eng, max_tokens=max_tokens, temperature=0.0)
    total = len(pset.problems)

    def counted(prompt: str):
        res = generate(prompt)
        counted.done += 1
        if on_step:
            on_step(counted.done, total)
        return res

    with ResultWriter(path) as writer:
        counted.done = len(writer.done_ids & {p.id for p in pset.problems})
        kw = dict(think_tags=eng.think_tags) if eng.think_tags else {}
        outcome = solve(pset.problems, writer, counted, prompt_template=template, progress=False, **kw)
    return outcome.records, outcome.interrupted


def summarize(records: list[dict], policy, pset: ProblemSet, max_tokens: int) -> AccuracyRecord:
    from raas_local.bench.fill import record_budget
    from raas_local.solve.results import compute_metrics

    m = compute_metrics(records, policy.kind, record_budget(policy), None)
    return AccuracyRecord(
        suite="accuracy", policy=policy.kind, budget=record_budget(policy), length=max_tokens, problems=pset.ident,
        n=m["n"], correct=m["correct"], accuracy=m["accuracy"], answered=m["answered"],
        mean_generated_tokens=m["mean_generated_tokens"], peak_kv_cells=m["peak_kv_cells"], tok_per_s=m["tok_per_s"],
        evictions=sum(int(r.get("evictions") or 0) for r in records),
    )
