"""`raas-local bench`: suites of measurements written to results.json, markdown tables and PNG plots.

Suites, one file each (settings line, run, table, plot): speed.py (decode
tok/s vs context length), memory.py (KV cells and bytes vs length),
fidelity.py (top-1 agreement and KL to dense vs budget), milestone.py (recall
of values copied from earlier in synthetic chains, by distance), and, when asked for,
accuracy.py (with --problems FILE: problems solved vs budget, scored as
`raas-local solve` scores) and throughput.py (problems/min and aggregate tok/s
at N sequences decoded together, as `raas-local solve --parallel N`). Every suite runs every policy kind (`--policies`
defaults to all registered kinds; `raas:refresh_ratio=0.25` is a variant with
settings of its own, bench/variants.py), side by side in one run. Records already
in OUT/results.json are kept and not measured again (resume a long run by
repeating the command; --force remeasures what the command asks for). The
tables and plots show exactly what the command asked for; report.md joins
every suite's table found in the folder. This file only parses and dispatches.
"""

from __future__ import annotations

import importlib
import shlex
import sys
import time

from raas_local import flags
from raas_local.argtypes import nonneg_int, positive_int
from raas_local.bench.plan import DEFAULT_SUITES, DEFAULTS, QUICK, SUITES
from raas_local.errors import InputError


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="measure policies: decode speed, KV memory and fidelity to dense")
    p.add_argument("--suite", default=",".join(DEFAULT_SUITES),
                   help=f"comma-separated suites of {','.join(SUITES)} (default {','.join(DEFAULT_SUITES)})")
    p.add_argument("-m", "--model", default=None, help="model (default: the embedded SmolLM2-135M)")
    p.add_argument("--policies", default=None, metavar="KIND[:SETTING=VALUE;...],...",
                   help="comma-separated policy kinds, each optionally with settings of its own after a colon, "
                        "joined by ';' (quote it), e.g. 'raas,raas:page_score=mean,raas:refresh_ratio=0.25' "
                        "(default: every kind)")
    # --budget, --page-size and every policy setting, as the other commands have them; a flag reaches the
    # selected kinds that have that setting, a variant's own settings win over it
    flags.add_policy_flags(p, kind=False,
                           budget_help=f"speed, memory: budget of the kinds that take one (default {DEFAULTS['budget']})")
    p.add_argument("--lengths", default=None, help=f"speed, memory: context lengths (default {DEFAULTS['lengths']})")
    p.add_argument("--window", type=positive_int, default=32, help="speed: decode steps timed per repetition (default 32)")
    p.add_argument("--reps", type=positive_int, default=None, help=f"speed: timed repetitions, median reported (default {DEFAULTS['reps']})")
    p.add_argument("--budgets", default=None, help=f"fidelity, accuracy: budgets (default {DEFAULTS['budgets']})")
    p.add_argument("--chain", type=positive_int, default=None,
                   help=f"fidelity: dense greedy chain length (default {DEFAULTS['chain']}); milestone: tokens per "
                        f"chain (default {DEFAULTS['milestone_chain']})")
    p.add_argument("--seeds", type=positive_int, default=None,
                   help=f"milestone: seeded synthetic chains (default {DEFAULTS['seeds']})")
    p.add_argument("--prompt", default=None, help="fidelity: raw prompt text (default: a short math question)")
    p.add_argument("--prompts", default=None, metavar="FILE",
                   help="fidelity: JSONL of {\"id\", \"prompt\"[, \"held_out\": true]}, a chain from each, reported per "
                        "prompt and as means (the bundled set: raas_local/bench/data/fidelity_prompts.jsonl)")
    p.add_argument("--problems", default=None, metavar="FILE",
                   help="accuracy: problems JSONL as `raas-local solve` reads it (the bundled sample: "
                        "raas_local/solve/data/sample.jsonl)")
    p.add_argument("--limit", type=positive_int, default=None, help="accuracy, throughput: the first N problems only")
    p.add_argument("--parallel", default=None,
                   help=f"throughput: sequences decoded together (default {DEFAULTS['parallel']}; problems: "
                        "--problems FILE, else the packaged sample set); accuracy: problems decoded together, "
                        "the largest of the list (default 1), as `raas-local solve --parallel`")
    p.add_argument("-n", "--max-tokens", type=positive_int, default=None,
                   help=f"accuracy, throughput: tokens generated per problem at most (default {DEFAULTS['max_tokens']})")
    p.add_argument("--quick", action="store_true",
                   help=f"smaller defaults: lengths {QUICK['lengths']}, {QUICK['reps']} repetitions, "
                        f"chain {QUICK['chain']} (milestone {QUICK['milestone_chain']}, {QUICK['seeds']} seeds), "
                        f"budgets {QUICK['budgets']}, max tokens {QUICK['max_tokens']} "
                        "(explicit flags still win)")
    p.add_argument("-ngl", "--n-gpu-layers", type=nonneg_int, default=0)
    p.add_argument("-fa", "--flash-attn", action="store_true")
    p.add_argument("-t", "--threads", type=positive_int, default=None)
    p.add_argument("-o", "--out", default="bench-out", help="output folder (default bench-out)")
    p.add_argument("--force", action="store_true", help="remeasure records already in results.json")
    p.set_defaults(func=run)


def suite(name: str):
    """The suite's module: run, selected, settings, outputs."""
    return importlib.import_module(f"raas_local.bench.{name}")


def write_outputs(plan, store, suites: list[str], command: str) -> None:
    from raas_local.bench import report
    from raas_local.bench.plan import header

    for name in suites:
        mod = suite(name)
        recs = mod.selected(plan, store)
        if not recs:
            continue
        table, notes = mod.outputs(plan, recs)
        md = report.suite_markdown(name, table, f"{mod.settings(plan)}. Command: `{command}`", notes, f"{name}.png")
        (plan.out / f"{name}.md").write_text(md)
        print(md)
    sections = [(plan.out / f"{s}.md").read_text() for s in SUITES if (plan.out / f"{s}.md").exists()]
    (plan.out / "report.md").write_text(report.combined_report(sections, header()))


def run(args) -> int:
    from raas_local.bench.plan import make_plan
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
                suite(s).run(plan, store, b)
    except KeyboardInterrupt:
        # every finished record (and every solved problem) is already on disk
        print(f"\nraas-local: interrupted: finished records are in {plan.out}/; rerun the same command to resume",
              file=sys.stderr)
        return 130
    write_outputs(plan, store, suites, command)
    print(f"bench: {', '.join(suites)} done in {time.perf_counter() - t0:.0f} s; outputs in {plan.out}/", file=sys.stderr)
    return 0
