"""``raas-local solve``: batch math solving on the real engine, resumable.

::

    raas-local solve [PROBLEMS.jsonl | --sample] [-o OUT] [-m MODEL]
                     [--policy P] [--budget L] [-n MAX_TOKENS] [--temp T] [-s SEED]
                     [--limit N] [--policies raas,dense --budgets 256,512,1024] [--parallel N]

PROBLEMS is the only positional argument; the model comes with ``-m``
(registry name, ``.gguf`` path or ``org/repo[:quant]``; default: the embedded
SmolLM2-135M).  The other flags are llama.cpp's (``-c``, ``-ngl``, ``-fa``,
``-t``, ``-s``, ``-n``, ``--temp``, ``--top-p``, ``--top-k``) plus
``--policy`` and its settings (``--budget``, ``--page-size``, ``--refresh-ratio``,
``--n-sink``, ``--heavy-ratio``: each reaches the kinds that have it).

The run plan, file names, default budget and the budget pre-check are
solve/plan.py's; metrics, summary lines and the sweep table are
solve/output.py's; with ``--ray`` the problems go to solve/ray_driver.py,
which runs the same plan on Ray actors.
Decisions of the command:

* A sweep reuses one Engine (``set_policy``) for all its runs, then prints
  the table (markdown) and writes ``<stem>.<model>.sweep.md`` and
  ``.sweep.json`` in its folder.
* Each problem is a fresh one-message conversation (``eng.reset()``) sampled
  with the same ``--seed``, so a problem's answer does not depend on which
  problems ran before it (resumed runs give what a straight run gives).
* Before loading anything heavy, bad problem lines are reported as one-line
  warnings (``FILE:LINE: why; skipped``) and the rest go on; a missing file is
  an InputError.
* A rerun with nothing left to do does not load the model.
* Ctrl-C: finished problems are already on disk (each line fsynced); one
  line says how many are done and to rerun the same command; exit 130.
* ``--parallel N`` decodes N problems at once in one context (continuous
  batching, raas_local/batch.py): each problem has its own sequence, KV
  cells, budget and sampler seeded with ``--seed``, and its record is written
  when it finishes, so records come in finishing order. Default: 1 on the CPU,
  where the gain is smaller (`bench --suite throughput` measures it) and N
  sequences hold N budgets of cells; 8 when layers are offloaded (-ngl > 0):
  one sequence leaves a GPU bound by reading the weights, 8 share each read,
  and 8 budgets of cells stay small next to the weights.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from raas_local import flags
from raas_local.argtypes import positive_float, positive_int, positive_int_list
from raas_local.errors import InputError
from raas_local.solve import output
from raas_local.solve.plan import DEFAULT_BUDGET, Run, dense_context_cells, model_label, plan_solve, preflight

__all__ = ["add_parser", "cmd_solve"]

DEFAULT_MAX_TOKENS = 2048


def _name_list(text: str) -> list[str]:
    items = [t.strip().lower() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("empty list")
    return list(dict.fromkeys(items))


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``solve`` to the top-level CLI's subparsers."""
    p = subparsers.add_parser(
        "solve",
        help="batch math solving with scoring; resumable, writes a metrics file",
        description=(
            "Solve a JSONL problem set (one {id, problem|question, answer|solution} object a line), "
            "score each answer against the gold one and append one JSON record a line to OUT as it "
            "finishes. Rerunning the same command resumes: problems already in OUT are skipped. "
            "Metrics go to <OUT stem>.metrics.json beside OUT."
        ),
        epilog=(
            "Default OUT: <problems stem>.<model>.<policy>-<budget>.results.jsonl "
            "(<stem>.<model>.dense.results.jsonl for dense) in the current directory. "
            "With --policies/--budgets, each (policy, budget) pair gets such a file in the folder -o "
            "(default: the current directory), dense runs once, and the table is printed and written "
            "to <stem>.<model>.sweep.md and .sweep.json there. A policy flag reaches the kinds that have "
            "that setting (--heavy-ratio: h2o) and is an error when none of them has it. "
            f"Sampling defaults: -n {DEFAULT_MAX_TOKENS}, --temp 0.6, --top-p 0.95, --top-k 40; "
            "every problem starts a fresh conversation with the same --seed."
        ),
    )
    p.add_argument("problems", nargs="?", default=None, metavar="PROBLEMS",
                   help="problems JSONL file (or --sample)")
    p.add_argument("--sample", action="store_true",
                   help="use the packaged sample set (42 GSM8K- and MATH-style problems)")
    p.add_argument("-o", "--out", default=None, metavar="OUT",
                   help="results JSONL (a folder in a sweep); see below for the default")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N",
                   help="only the first N valid problems")
    p.add_argument("--policies", type=_name_list, default=None, metavar="P1,P2",
                   help="sweep: policies to run, e.g. raas,dense")
    p.add_argument("--budgets", type=positive_int_list, default=None, metavar="L1,L2",
                   help="sweep: budgets to run, e.g. 256,512,1024 (not for dense)")
    p.add_argument("--check-timeout", type=positive_float, default=5.0, metavar="S",
                   help="seconds allowed for one symbolic answer check (default 5)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--parallel", type=positive_int, default=None, metavar="N",
                   help="problems decoded together, each in its own sequence with its own budget "
                        "(default: 1 on the CPU, 8 with -ngl > 0)")
    # run's model, policy and sampling flags, minus its positional MODEL (PROBLEMS is the positional here)
    flags.add_model_flags(p, positional_model=False)
    flags.add_policy_flags(p, budget_help="KV cells per sequence, prompt included (default: the model's "
                                          f"recommended budget, else {DEFAULT_BUDGET})")
    flags.add_sampling_flags(p, max_tokens=DEFAULT_MAX_TOKENS)
    # --- issue 15: solve on a Ray cluster (raas_local/solve/ray_driver.py) ---
    from raas_local.solve.ray_cluster import add_ray_flags

    add_ray_flags(p)
    # --- end issue 15 ---
    p.set_defaults(func=cmd_solve)
    return p


def _problems_path(args) -> Path:
    from raas_local.solve.data import sample_path

    if args.sample and args.problems:
        raise InputError("give a PROBLEMS file or --sample, not both")
    if args.sample:
        return sample_path()
    if not args.problems:
        raise InputError("no problems: pass PROBLEMS.jsonl or --sample")
    return Path(args.problems)


def cmd_solve(args) -> int:
    from raas_local.models import resolve_model
    from raas_local.solve.problems import load_problems
    from raas_local.solve.runner import (DEFAULT_PROMPT_TEMPLATE, engine_generate_fn, engine_generate_many,
                                         prompting, solve)
    from raas_local.thinking import DEFAULT_THINK_TAGS

    problems_path = _problems_path(args)
    problems, errors = load_problems(problems_path)
    for e in errors:
        print(f"raas-local: warning: {e}", file=sys.stderr)
    if args.limit is not None:
        problems = problems[: args.limit]
    if not problems:
        raise InputError(f"no valid problems in {problems_path}")
    if args.ray is not None or args.workers is not None:  # issue 15: the Ray driver (solve/ray_driver.py)
        if args.parallel is not None:
            raise InputError("--parallel does not apply with --ray (each worker solves one problem at a time)")
        from raas_local.solve.ray_driver import solve_on_ray

        return solve_on_ray(args, problems, problems_path)

    model_path, spec = resolve_model(flags.model_arg(args))
    plan = plan_solve(args, problems, problems_path, model_label(spec, model_path), spec)
    runs, sweep, sampling = plan.runs, plan.sweep, plan.sampling
    parallel = args.parallel or (8 if args.n_gpu_layers > 0 else 1)

    eng = None
    template, think_tags = DEFAULT_PROMPT_TEMPLATE, DEFAULT_THINK_TAGS
    progress = not args.no_progress and sys.stderr.isatty()
    rows: list[dict] = []
    current: Run | None = None
    try:
        if plan.todo:
            eng = flags.engine_from_args(args, plan.first_pending().policy, n_seq=parallel,
                                         n_ctx_dense=dense_context_cells(problems, sampling.max_tokens))
            template, think_tags = prompting(eng)
            preflight(eng, runs, plan.pending, template)
        for i, run in enumerate(runs, start=1):
            current = run
            if plan.pending[run.tag] and eng.policy != run.policy:
                eng.set_policy(run.policy)
            with plan.writer(run) as writer:
                outcome = solve(
                    problems, writer, engine_generate_fn(eng, sampling) if eng is not None else _no_generation,
                    generate_many=engine_generate_many(eng, sampling) if eng is not None and parallel > 1 else None,
                    prompt_template=template, progress=progress, timeout=args.check_timeout,
                    think_tags=think_tags, description=run.tag if sweep else "solve",
                )
            metrics, metrics_path = output.save_metrics(outcome.records, run, plan.model_label, sampling)
            if outcome.interrupted:
                output.say_interrupted(run, len(outcome.records), len(problems), not args.out, sweep, i, len(runs))
                return 130
            rows.append(metrics)
            output.report_run(run.tag if sweep else problems_path.name, metrics, metrics_path, run, len(problems),
                              outcome.new, outcome.skipped)
    except KeyboardInterrupt:
        # outside a problem (loading the model, switching policy, writing metrics)
        done = 0 if current is None else sum(1 for p in problems if p.id in _done_ids(current.out))
        i = 0 if current is None else runs.index(current) + 1
        output.say_interrupted(current, done, len(problems), not args.out, sweep, i, len(runs))
        return 130
    finally:
        if eng is not None:
            eng.close()
    if sweep:
        output.report_sweep(runs[0].out.parent, problems_path, plan.model_label, rows, sampling)
    return 0


def _no_generation(prompt: str):  # pragma: no cover - only reached if resume bookkeeping is wrong
    raise AssertionError("every problem was already done; nothing should be generated")


def _done_ids(out: Path) -> set[str]:
    from raas_local.solve.results import read_records

    try:
        return {str(r["id"]) for r in read_records(out)}
    except InputError:
        return set()
