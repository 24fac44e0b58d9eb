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
from raas_local.bench.variants import policy_name
from raas_local.errors import InputError, PolicyError
from raas_local.policies import PAGE_SIZE

SUITES = ("speed", "memory", "fidelity", "milestone", "accuracy", "throughput")
DEFAULT_SUITES = ("speed", "memory", "fidelity")  # accuracy needs a problem file
DEFAULTS = dict(lengths="256,512,2048,8192,16384", reps=3, chain=2048, budgets="64,128,256,512,1024", max_tokens=1024,
                budget=512, parallel="1,2,4,8", milestone_chain=1024, seeds=3)
QUICK = dict(lengths="256,512,2048", reps=2, chain=512, budgets="64,128,256", max_tokens=256, milestone_chain=512,
             seeds=2)


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
    specs: list                     # bench.variants.Spec: the --policies items
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
    prompts: list = field(default_factory=list)  # fidelity: bench.prompts.Prompt, one or a file's
    milestone_chain: int = 1024     # milestone: body tokens per chain
    seeds: int = 3                  # milestone: seeded chains
    engine_kw: dict = field(default_factory=dict)
    given: dict = field(default_factory=dict)    # policy settings given as flags (--refresh-ratio, ...)

    @property
    def kinds(self) -> list[str]:
        return list(dict.fromkeys(s.kind for s in self.specs))

    def policy(self, spec, budget: int | None = None):
        """The item ``spec`` (a Spec or a kind) at ``budget`` (default: --budget) and --page-size, where it
        takes them; the variant's own settings win over the flags'."""
        from raas_local.bench.variants import Spec
        from raas_local.policies import make

        spec = spec if isinstance(spec, Spec) else Spec(spec)
        return make(spec.kind, **{**self.given, **spec.settings, "budget": budget or self.budget,
                                  "page_size": self.page_size})

    def key(self, suite: str, policy, length: int, prompt=None) -> tuple:
        """The store key (store.KEY_FIELDS) of a record of ``policy``; ``prompt``: fidelity's bench.prompts.Prompt."""
        from raas_local.bench.variants import settings, settings_key

        return (suite, self.label, policy.kind, policy.budget, self.page_size, length,
                settings_key(settings(policy)), *(prompt.key if prompt else (None, None)))

    def stamp(self, rec, policy, prompt=None) -> dict:
        """A measured record as stored: its fields plus the rest of its key (model, page size, every
        setting of the policy, the prompt's id and text digest)."""
        from raas_local.bench.variants import settings

        extra = dict(zip(("prompt", "prompt_sha"), prompt.key)) if prompt else {}
        return {**asdict(rec), "model": self.label, "page_size": self.page_size, "settings": settings(policy), **extra}

    def _unique(self, policies: list) -> list:
        # a variant that spells out its kind's defaults is the same run as the plain kind
        return list(dict.fromkeys(policies))

    def budget_items(self) -> list:
        """The items without a budget (dense) once, then the others at every budget (fidelity, accuracy)."""
        from raas_local.policies.base import kind_class

        takes = [s for s in self.specs if "budget" in kind_class(s.kind).settings()]
        return self._unique([self.policy(s) for s in self.specs if s not in takes]
                            + [self.policy(s, b) for b in self.budgets for s in takes])

    def length_items(self) -> list:
        """(length, policy) for every length and item (the speed and memory suites)."""
        return [(n, p) for n in self.lengths for p in self._unique([self.policy(s) for s in self.specs])]


def make_plan(args) -> Plan:
    from raas_local.bench import prompts, variants
    from raas_local.policies import KINDS

    base = {**DEFAULTS, **(QUICK if args.quick else {})}
    specs = variants.parse(args.policies or ",".join(sorted(KINDS, key=lambda k: (k != "dense", k))))
    kinds = list(dict.fromkeys(s.kind for s in specs))
    # the policy flags reach the kinds that have them; given for none of them, they are an error
    given = flags.given_settings(args)
    flags.check_flags_apply(kinds, [*given, *(["budgets"] if args.budgets else [])])
    plan = Plan(
        model=args.model, label=args.model or "embedded", specs=specs, page_size=args.page_size or PAGE_SIZE,
        budget=args.budget or base["budget"],
        lengths=_ints(args.lengths or base["lengths"], "--lengths"), window=args.window,
        reps=args.reps if args.reps is not None else base["reps"], budgets=_ints(args.budgets or base["budgets"], "--budgets"),
        chain=args.chain if args.chain is not None else base["chain"], prompt=args.prompt or prompts.PROMPT,
        out=Path(args.out), max_tokens=args.max_tokens if args.max_tokens is not None else base["max_tokens"],
        engine_kw=dict(n_gpu_layers=args.n_gpu_layers, flash_attn=args.flash_attn, n_threads=args.threads),
        limit=args.limit, parallel=_ints(args.parallel or base["parallel"], "--parallel"),
        solve_parallel=max(_ints(args.parallel, "--parallel")) if args.parallel else 1,
        given={k: v for k, v in given.items() if k not in variants.SWEPT},
        milestone_chain=args.chain if args.chain is not None else base["milestone_chain"],
        seeds=args.seeds if getattr(args, "seeds", None) is not None else base["seeds"],
    )
    if getattr(args, "prompts", None):
        if args.prompt:
            raise InputError("--prompt and --prompts are exclusive: give one prompt, or a file of them")
        plan.prompts = prompts.load(args.prompts)
    else:
        plan.prompts = [prompts.single(plan.prompt)]
    if args.problems:
        from raas_local.bench.accuracy import ProblemSet

        plan.problems = ProblemSet.load(args.problems, args.limit)
    for s in specs:  # bad settings and budgets fail here, before anything is measured
        plan.policy(s)
        for b in plan.budgets:
            plan.policy(s, b)
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
        what = f"{suite} {policy_name(pol)} length {n}"
        bars.item(what)
        rec = plan.stamp(measure(pol, n), pol)
        store.add(rec)
        bars.item_done(f"{what}: {describe(rec)}")


def selected_per_length(plan: Plan, store, suite: str) -> list[dict]:
    keys = [plan.key(suite, p, n) for n, p in plan.length_items()]
    return [r for r in (store.get(k) for k in keys) if r is not None]


def common_settings(plan: Plan) -> str:
    from raas_local.bench.variants import series, settings

    names = dict.fromkeys(series(p.kind, settings(p)) for p in plan._unique([plan.policy(s) for s in plan.specs]))
    given = "".join(f"; --{k.replace('_', '-')} {v}" for k, v in plan.given.items())
    return f"Model: {plan.label}; policies: {', '.join(names)}; page size {plan.page_size}{given}"


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
