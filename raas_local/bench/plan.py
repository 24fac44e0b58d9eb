"""What one `raas-local bench` command asks for, resolved from its flags, and what the suites share.

Each suite (speed.py, memory.py, fidelity.py, accuracy.py, throughput.py) has the same
four names: ``run(plan, store, bars)`` measures the records the store lacks,
``selected(plan, store)`` the records the command asked for, ``settings(plan)``
the line that says how they were measured, and ``outputs(plan, records)``
writes the plot and returns the markdown table and its notes.
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from raas_local import flags
from raas_local.errors import InputError, PolicyError
from raas_local.policies import PAGE_SIZE

SUITES = ("speed", "memory", "fidelity", "accuracy", "throughput")
DEFAULT_SUITES = ("speed", "memory", "fidelity")  # accuracy needs a problem file
DEFAULTS = dict(lengths="256,512,2048,8192,16384", reps=3, chain=2048, budgets="64,128,256,512,1024", max_tokens=1024,
                budget=512, parallel="1,2,4,8")
QUICK = dict(lengths="256,512,2048", reps=2, chain=512, budgets="64,128,256", max_tokens=256)


def _ints(text: str, flag: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"{flag} must be comma-separated integers, got {text!r}") from None
    if not vals or any(v < 1 for v in vals):
        raise InputError(f"{flag} must be positive integers, got {text!r}")
    return vals


@dataclass
class Plan:
    """What one bench command asks for, resolved from its flags."""
    model: str | None
    label: str                      # the model as records name it
    kinds: list[str]
    page_size: int
    budget: int
    lengths: list[int]
    window: int
    reps: int
    budgets: list[int]
    chain: int
    prompt: str
    out: Path
    max_tokens: int = 1024
    problems: object = None         # accuracy, throughput: bench.accuracy.ProblemSet
    limit: int | None = None        # accuracy, throughput: the first problems only
    parallel: list[int] = field(default_factory=lambda: [1, 2, 4, 8])  # throughput: sequences decoded together
    solve_parallel: int = 1         # accuracy: problems decoded together (the largest --parallel given)
    engine_kw: dict = field(default_factory=dict)

    def policy(self, kind: str, budget: int | None = None):
        """``kind`` at ``budget`` (default: --budget) and --page-size, where it takes them."""
        from raas_local.policies import make

        return make(kind, budget=budget or self.budget, page_size=self.page_size)

    def key(self, suite: str, policy, length: int) -> tuple:
        return (suite, self.label, policy.kind, policy.budget, self.page_size, length)

    def stamp(self, rec) -> dict:
        """A measured record as stored: its fields plus the model and page size of its key."""
        return {**asdict(rec), "model": self.label, "page_size": self.page_size}

    def budget_items(self) -> list:
        """The kinds without a budget (dense) once, then the others at every budget (fidelity, accuracy)."""
        from raas_local.policies.base import kind_class

        takes = {k: "budget" in kind_class(k).settings() for k in self.kinds}
        return ([self.policy(k) for k in self.kinds if not takes[k]]
                + [self.policy(k, b) for b in self.budgets for k in self.kinds if takes[k]])

    def length_items(self) -> list:
        """(length, policy) for every length and kind (the speed and memory suites)."""
        return [(n, self.policy(k)) for n in self.lengths for k in self.kinds]


def make_plan(args) -> Plan:
    from raas_local.bench.fidelity import PROMPT
    from raas_local.policies import KINDS

    base = {**DEFAULTS, **(QUICK if args.quick else {})}
    kinds = [k.strip() for k in args.policies.split(",") if k.strip()] if args.policies else sorted(KINDS, key=lambda k: (k != "dense", k))
    # --budget and --page-size reach the kinds that have them; given for none of them, they are an error
    flags.check_flags_apply(kinds, [*flags.given_settings(args), *(["budgets"] if args.budgets else [])])
    plan = Plan(
        model=args.model, label=args.model or "embedded", kinds=kinds, page_size=args.page_size or PAGE_SIZE,
        budget=args.budget or base["budget"],
        lengths=_ints(args.lengths or base["lengths"], "--lengths"), window=args.window,
        reps=args.reps if args.reps is not None else base["reps"], budgets=_ints(args.budgets or base["budgets"], "--budgets"),
        chain=args.chain if args.chain is not None else base["chain"], prompt=args.prompt or PROMPT, out=Path(args.out),
        max_tokens=args.max_tokens if args.max_tokens is not None else base["max_tokens"],
        engine_kw=dict(n_gpu_layers=args.n_gpu_layers, flash_attn=args.flash_attn, n_threads=args.threads),
        limit=args.limit, parallel=_ints(args.parallel or base["parallel"], "--parallel"),
        solve_parallel=max(_ints(args.parallel, "--parallel")) if args.parallel else 1,
    )
    if args.problems:
        from raas_local.bench.accuracy import ProblemSet

        plan.problems = ProblemSet.load(args.problems, args.limit)
    for k in kinds:  # unknown kinds and bad budgets fail here, before anything is measured
        plan.policy(k)
        for b in plan.budgets:
            plan.policy(k, b)
    return plan


def check_prompt_fits(policies, n_prompt: int, what: str, hint: str = "") -> None:
    """Refuse, before the long work starts, a budget that a prompt of n_prompt tokens leaves no room in."""
    for p in policies:
        if not p.fits(n_prompt):
            need = p.min_budget(n_prompt)
            raise PolicyError(f"{what} has {n_prompt} tokens: {p.kind} budget {p.budget} leaves fewer than two pages "
                              f"({need - n_prompt} cells) to decode in; use budgets of at least {need}{hint}")


def measure_per_length(plan: Plan, store, bars, suite: str, measure, describe) -> None:
    """Measure, one at a time, the (length, policy) records of `suite` that the store lacks (speed, memory)."""
    todo = [(n, p) for n, p in plan.length_items() if not store.has(plan.key(suite, p, n))]
    if not todo:
        return
    bars.start_suite(suite, len(todo))
    for n, pol in todo:
        what = f"{suite} {pol.tag} length {n}"
        bars.item(what)
        rec = plan.stamp(measure(pol, n))
        store.add(rec)
        bars.item_done(f"{what}: {describe(rec)}")


def selected_per_length(plan: Plan, store, suite: str) -> list[dict]:
    keys = [plan.key(suite, p, n) for n, p in plan.length_items()]
    return [r for r in (store.get(k) for k in keys) if r is not None]


def common_settings(plan: Plan) -> str:
    return f"Model: {plan.label}; policies: {', '.join(plan.kinds)}; page size {plan.page_size}"


def header() -> str:
    """report.md's first lines: when and where the figures were measured."""
    import os

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"# raas-local bench\n\nWritten {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {cpu}, "
            f"{os.cpu_count()} CPU threads visible. Figures from one machine, measured side by side; "
            "compare ratios within a table rather than absolute figures across runs.")
