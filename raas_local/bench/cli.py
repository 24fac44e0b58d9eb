"""`raas-local bench`: suites of measurements written to results.json, markdown tables and PNG plots.

Suites: speed (decode tok/s vs context length), memory (KV cells and bytes vs
length), fidelity (top-1 agreement and KL to dense vs budget), and, when asked
for with --problems FILE, accuracy (problems solved vs budget, scored as
`raas-local solve` scores; bench/accuracy.py). Every suite runs
every policy kind (`--policies` defaults to all registered kinds), side by side
in one run. Records already in OUT/results.json are kept and not measured again
(resume a long run by repeating the command; --force remeasures what the
command asks for). The tables and plots show exactly what the command asked
for; report.md joins every suite's table found in the folder.
"""

from __future__ import annotations

import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from raas_local.argtypes import nonneg_int, positive_int
from raas_local.errors import InputError

SUITES = ("speed", "memory", "fidelity", "accuracy")
DEFAULT_SUITES = ("speed", "memory", "fidelity")  # accuracy needs a problem file
DEFAULTS = dict(lengths="256,512,2048,8192,16384", reps=3, chain=2048, budgets="64,128,256,512,1024", max_tokens=1024)
QUICK = dict(lengths="256,512,2048", reps=2, chain=512, budgets="64,128,256", max_tokens=256)


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="measure policies: decode speed, KV memory and fidelity to dense")
    p.add_argument("--suite", default=",".join(DEFAULT_SUITES),
                   help=f"comma-separated suites of {','.join(SUITES)} (default {','.join(DEFAULT_SUITES)})")
    p.add_argument("-m", "--model", default=None, help="model (default: the embedded SmolLM2-135M)")
    p.add_argument("--policies", default=None, help="comma-separated policy kinds (default: every kind)")
    p.add_argument("--budget", type=positive_int, default=512, help="speed, memory: budget of the evicting policies (default 512)")
    p.add_argument("--page-size", type=positive_int, default=16)
    p.add_argument("--lengths", default=None, help=f"speed, memory: context lengths (default {DEFAULTS['lengths']})")
    p.add_argument("--window", type=positive_int, default=32, help="speed: decode steps timed per repetition (default 32)")
    p.add_argument("--reps", type=positive_int, default=None, help=f"speed: timed repetitions, median reported (default {DEFAULTS['reps']})")
    p.add_argument("--budgets", default=None, help=f"fidelity: budgets (default {DEFAULTS['budgets']})")
    p.add_argument("--chain", type=positive_int, default=None, help=f"fidelity: dense greedy chain length (default {DEFAULTS['chain']})")
    p.add_argument("--prompt", default=None, help="fidelity: raw prompt text (default: a short math question)")
    p.add_argument("--problems", default=None, metavar="FILE",
                   help="accuracy: problems JSONL as `raas-local solve` reads it (the bundled sample: "
                        "raas_local/solve/data/sample.jsonl)")
    p.add_argument("--limit", type=positive_int, default=None, help="accuracy: the first N problems only")
    p.add_argument("-n", "--max-tokens", type=positive_int, default=None,
                   help=f"accuracy: tokens generated per problem at most (default {DEFAULTS['max_tokens']})")
    p.add_argument("--quick", action="store_true",
                   help=f"smaller defaults: lengths {QUICK['lengths']}, {QUICK['reps']} repetitions, "
                        f"chain {QUICK['chain']}, budgets {QUICK['budgets']}, max tokens {QUICK['max_tokens']} "
                        "(explicit flags still win)")
    p.add_argument("-ngl", "--n-gpu-layers", type=nonneg_int, default=0)
    p.add_argument("-fa", "--flash-attn", action="store_true")
    p.add_argument("-t", "--threads", type=positive_int, default=None)
    p.add_argument("-o", "--out", default="bench-out", help="output folder (default bench-out)")
    p.add_argument("--force", action="store_true", help="remeasure records already in results.json")
    p.set_defaults(func=run)


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
    problems: object = None         # accuracy: bench.accuracy.ProblemSet
    engine_kw: dict = field(default_factory=dict)

    def policy(self, kind: str, budget: int | None = None):
        from raas_local.policies import CachePolicy

        return CachePolicy(kind=kind, budget=budget or self.budget, page_size=self.page_size)

    def key(self, suite: str, policy, length: int) -> tuple:
        from raas_local.bench.fill import record_budget

        return (suite, self.label, policy.kind, record_budget(policy), self.page_size, length)

    def stamp(self, rec) -> dict:
        """A measured record as stored: its fields plus the model and page size of its key."""
        return {**asdict(rec), "model": self.label, "page_size": self.page_size}


def make_plan(args) -> Plan:
    from raas_local.bench.fidelity import PROMPT
    from raas_local.policies import KINDS

    base = QUICK if args.quick else DEFAULTS
    kinds = [k.strip() for k in args.policies.split(",") if k.strip()] if args.policies else sorted(KINDS, key=lambda k: (k != "dense", k))
    plan = Plan(
        model=args.model, label=args.model or "embedded", kinds=kinds, page_size=args.page_size, budget=args.budget,
        lengths=_ints(args.lengths or base["lengths"], "--lengths"), window=args.window,
        reps=args.reps if args.reps is not None else base["reps"], budgets=_ints(args.budgets or base["budgets"], "--budgets"),
        chain=args.chain if args.chain is not None else base["chain"], prompt=args.prompt or PROMPT, out=Path(args.out),
        max_tokens=args.max_tokens if args.max_tokens is not None else base["max_tokens"],
        engine_kw=dict(n_gpu_layers=args.n_gpu_layers, flash_attn=args.flash_attn, n_threads=args.threads),
    )
    if plan.chain < 1 or plan.window < 1 or plan.reps < 1 or plan.max_tokens < 1:
        raise InputError("--chain, --window, --reps and --max-tokens must be at least 1")
    if args.limit is not None and args.limit < 1:
        raise InputError("--limit must be at least 1")
    if args.problems:
        from raas_local.bench.accuracy import ProblemSet

        plan.problems = ProblemSet.load(args.problems, args.limit)
    for k in kinds:  # unknown kinds and bad budgets fail here, before anything is measured
        plan.policy(k)
        for b in plan.budgets:
            plan.policy(k, b)
    return plan


# -- the suites: each measures what is missing, one record at a time ----------------------------

def _run_per_length(plan: Plan, store, bars, suite: str, measure, describe) -> None:
    """Measure, one at a time, the (length, policy) records of `suite` that the store lacks."""
    todo = [(n, plan.policy(k)) for n in plan.lengths for k in plan.kinds]
    todo = [(n, p) for n, p in todo if not store.has(plan.key(suite, p, n))]
    if not todo:
        return
    bars.start_suite(suite, len(todo))
    for n, pol in todo:
        what = f"{suite} {_name(pol)} length {n}"
        bars.item(what)
        rec = plan.stamp(measure(pol, n))
        store.add(rec)
        bars.item_done(f"{what}: {describe(rec)}")


def run_speed(plan: Plan, store, bars) -> None:
    from raas_local.bench.speed import measure

    _run_per_length(plan, store, bars, "speed",
                    lambda pol, n: measure(plan.model, pol, n, plan.window, plan.reps, **plan.engine_kw),
                    lambda r: f"{r['tok_per_s']:.1f} tok/s, {r['kv_cells']} KV cells, {r['evictions']} evictions")


def run_memory(plan: Plan, store, bars) -> None:
    from raas_local.bench.memory import measure_memory

    _run_per_length(plan, store, bars, "memory",
                    lambda pol, n: measure_memory(plan.model, pol, n, **plan.engine_kw),
                    lambda r: f"{r['kv_cells']} KV cells, {r['kv_bytes'] / 2**20:.1f} MiB")


def _budget_items(plan: Plan) -> list:
    """Dense once, then every other kind at every budget (the fidelity and accuracy suites)."""
    items = [plan.policy("dense")] if "dense" in plan.kinds else []
    return items + [plan.policy(k, b) for b in plan.budgets for k in plan.kinds if k != "dense"]


def run_fidelity(plan: Plan, store, bars) -> None:
    from raas_local.bench.fidelity import DenseReference, check_fits, teacher_force
    from raas_local.engine import Engine

    todo = [p for p in _budget_items(plan) if not store.has(plan.key("fidelity", p, plan.chain))]
    if not todo:
        return
    ref = DenseReference(plan.out, plan.chain)
    have_ref = ref.load(plan.label, plan.prompt)
    others = [p for p in todo if p.kind != "dense"]
    bars.start_suite("fidelity", len(others) + (0 if have_ref else 1))
    if have_ref:
        for p in others:
            check_fits(p, len(ref.prompt))
    else:
        # the prompt is tokenized and checked against every budget before the long work starts;
        # a token never takes less than a byte, so the text's length bounds the prompt's cells
        n_ctx = len(plan.prompt.encode()) + plan.chain + 16
        with Engine(model=plan.model, policy=plan.policy("dense"), n_ctx=n_ctx, **plan.engine_kw) as eng:
            toks = eng.tokenize(plan.prompt)
            for p in others:
                check_fits(p, len(toks))
            bars.item(f"fidelity dense reference ({plan.chain} tokens)")
            ref.generate(eng, plan.label, plan.prompt, toks, on_step=bars.steps)
        bars.item_done(f"fidelity dense reference: {plan.chain} tokens, {ref.meta['tok_per_s']:.1f} tok/s")
    if any(p.kind == "dense" for p in todo):
        store.add(plan.stamp(ref.dense_record()))
    for pol in others:
        name = _name(pol)
        bars.item(f"fidelity {name}")
        rec = plan.stamp(teacher_force(plan.model, pol, ref, on_step=bars.steps, **plan.engine_kw))
        store.add(rec)
        bars.item_done(f"fidelity {name}: top-1 {rec['top1_agreement']:.3f}, KL {rec['mean_kl']:.4f}, {rec['kv_cells']} KV cells")
    # the log-probs are large (chain x vocab x 2 bytes); once every record is in, they have served
    if all(store.has(plan.key("fidelity", p, plan.chain)) for p in _budget_items(plan)):
        ref.cleanup()


def run_accuracy(plan: Plan, store, bars) -> None:
    from raas_local.bench import accuracy as acc
    from raas_local.engine import Engine
    from raas_local.solve.results import read_records
    from raas_local.solve.runner import DEFAULT_PROMPT_TEMPLATE, render_prompt

    pset = plan.problems
    items = _budget_items(plan)
    path = {_name(p): acc.results_path(plan.out, pset, plan.label, p, plan.max_tokens) for p in items}
    if store.force:
        for p in items:
            path[_name(p)].unlink(missing_ok=True)
    todo = [p for p in items if acc.pending(path[_name(p)], pset)]
    if todo:
        bars.start_suite("accuracy", len(todo))
        # a dense (or quest) cache holds the whole conversation; a token never takes less than a byte
        longest = max(len(render_prompt(DEFAULT_PROMPT_TEMPLATE, p.problem).encode()) for p in pset.problems)
        n_ctx = longest + 512 + plan.max_tokens
        with Engine(model=plan.model, policy=todo[0], n_ctx=n_ctx, **plan.engine_kw) as eng:
            template = eng.spec.prompt_template if eng.spec is not None else DEFAULT_PROMPT_TEMPLATE
            longest = max(len(eng.tokenize(render_prompt(template, p.problem))) for p in pset.problems)
            for p in todo:  # every budget against the longest prompt, before the long work starts
                acc.check_fits(p, longest)
            for pol in todo:
                name = _name(pol)
                bars.item(f"accuracy {name}")
                records, interrupted = acc.solve_run(eng, pol, pset, path[name], plan.max_tokens, on_step=bars.steps)
                if interrupted:
                    raise KeyboardInterrupt  # the solved problems are on disk; a rerun resumes
                rec = acc.summarize(records, pol, pset, plan.max_tokens)
                store.add(plan.stamp(rec))
                bars.item_done(f"accuracy {name}: {rec.correct}/{rec.n} ({rec.accuracy:.1%}), "
                               f"mean {rec.mean_generated_tokens:.0f} tokens, peak {rec.peak_kv_cells} KV cells")
    # finished runs (this time or before) are summarized from their files
    for p in items:
        if not acc.pending(path[_name(p)], pset):
            store.add(plan.stamp(acc.summarize(read_records(path[_name(p)]), p, pset, plan.max_tokens)))


RUNNERS = {"speed": run_speed, "memory": run_memory, "fidelity": run_fidelity, "accuracy": run_accuracy}


# -- outputs --------------------------------------------------------------------------------------

def _name(pol) -> str:
    return pol.kind if pol.kind == "dense" else f"{pol.kind}@{pol.budget}"


def selected(plan: Plan, store, suite: str) -> list[dict]:
    """The records this command asked for, in the order of its flags."""
    if suite == "fidelity":
        keys = [plan.key(suite, p, plan.chain) for p in _budget_items(plan)]
    elif suite == "accuracy":
        keys = [plan.key(suite, p, plan.max_tokens) for p in _budget_items(plan)]
        return [r for r in (store.get(k) for k in keys) if r is not None and r.get("problems") == plan.problems.ident]
    else:
        keys = [plan.key(suite, plan.policy(k), n) for n in plan.lengths for k in plan.kinds]
    return [r for r in (store.get(k) for k in keys) if r is not None]


def _settings(plan: Plan, suite: str, command: str) -> str:
    common = f"Model: {plan.label}; policies: {', '.join(plan.kinds)}; page size {plan.page_size}"
    if suite == "speed":
        what = f"budget {plan.budget}; lengths {', '.join(map(str, plan.lengths))}; {plan.window} decode steps timed x {plan.reps}, median"
    elif suite == "memory":
        what = f"budget {plan.budget}; lengths {', '.join(map(str, plan.lengths))}"
    elif suite == "accuracy":
        what = (f"problems {plan.problems.ident}, {len(plan.problems.problems)} problems, greedy, at most "
                f"{plan.max_tokens} tokens each, scored as `raas-local solve` scores; budgets {', '.join(map(str, plan.budgets))}")
    else:
        what = (f"dense greedy chain of {plan.chain} tokens from {plan.prompt!r}, teacher-forced through each policy at "
                f"budgets {', '.join(map(str, plan.budgets))}; agreement and KL per step, averaged")
    return f"{common}; {what}. Command: `{command}`"


def write_outputs(plan: Plan, store, suites: list[str], command: str) -> None:
    from raas_local.bench import plots, report

    for suite in suites:
        recs = selected(plan, store, suite)
        if not recs:
            continue
        if suite == "speed":
            table, notes = report.speed_table(recs), report.speed_targets(recs, plan.budget)
            plots.plot_speed(recs, plan.out / "speed.png")
        elif suite == "memory":
            table, notes = report.memory_table(recs) + "\n\n" + report.compute_table(recs), report.memory_checks(recs)
            plots.plot_memory(recs, plan.out / "memory.png")
        elif suite == "accuracy":
            table, notes = report.accuracy_table(recs), []
            plots.plot_accuracy(recs, plan.out / "accuracy.png")
        else:
            table, notes = report.fidelity_table(recs), []
            plots.plot_fidelity(recs, plan.out / "fidelity.png")
        md = report.suite_markdown(suite, table, _settings(plan, suite, command), notes, f"{suite}.png")
        (plan.out / f"{suite}.md").write_text(md)
        print(md)
    sections = [(plan.out / f"{s}.md").read_text() for s in SUITES if (plan.out / f"{s}.md").exists()]
    (plan.out / "report.md").write_text(report.combined_report(sections, _header()))


def _header() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import os

    return (f"# raas-local bench\n\nWritten {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {cpu}, "
            f"{os.cpu_count()} CPU threads visible. Figures from one machine, measured side by side; "
            "compare ratios within a table rather than absolute figures across runs.")


def run(args) -> int:
    from raas_local.bench.progress import bars
    from raas_local.bench.store import Store

    suites = [s.strip() for s in args.suite.split(",") if s.strip()]
    for s in suites:
        if s not in SUITES:
            raise InputError(f"unknown suite {s!r}; choose from {', '.join(SUITES)}")
    if "accuracy" in suites and not args.problems:
        raise InputError("--suite accuracy needs --problems FILE (e.g. raas_local/solve/data/sample.jsonl)")
    plan = make_plan(args)
    plan.out.mkdir(parents=True, exist_ok=True)
    store = Store(plan.out / "results.json", force=args.force)
    # for the tables' settings line; a newline in --prompt would break the markdown
    command = ("raas-local " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["bench"] else "raas-local bench ...").replace("\n", "\\n")
    t0 = time.perf_counter()
    try:
        with bars() as b:
            for s in suites:
                RUNNERS[s](plan, store, b)
    except KeyboardInterrupt:
        # every finished record (and every solved problem) is already on disk
        print(f"\nraas-local: interrupted: finished records are in {plan.out}/; rerun the same command to resume",
              file=sys.stderr)
        return 130
    write_outputs(plan, store, suites, command)
    print(f"bench: {', '.join(suites)} done in {time.perf_counter() - t0:.0f} s; outputs in {plan.out}/", file=sys.stderr)
    return 0
