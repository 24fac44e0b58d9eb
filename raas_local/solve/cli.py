"""``raas-local solve``: batch math solving on the real engine, resumable.

::

    raas-local solve [PROBLEMS.jsonl | --sample] [-o OUT] [-m MODEL]
                     [--policy P] [--budget L] [-n MAX_TOKENS] [--temp T] [-s SEED]
                     [--limit N] [--policies raas,dense --budgets 256,512,1024]

PROBLEMS is the only positional argument; the model comes with ``-m``
(registry name, ``.gguf`` path or ``org/repo[:quant]``; default: the embedded
SmolLM2-135M).  The other flags are llama.cpp's (``-c``, ``-ngl``, ``-fa``,
``-t``, ``-s``, ``-n``, ``--temp``, ``--top-p``, ``--top-k``) plus
``--policy`` and its settings (``--budget``, ``--page-size``, ``--refresh-ratio``,
``--n-sink``, ``--heavy-ratio``: each reaches the kinds that have it).

The run plan and file names are solve/plan.py's; metrics, summary lines and
the sweep table are solve/output.py's. Decisions of the command:

* A sweep reuses one Engine (``set_policy``) for all its runs, then prints
  the table (markdown) and writes ``<stem>.<model>.sweep.md`` and
  ``.sweep.json`` in its folder.
* ``--budget`` defaults to the model's ``recommended_budget`` from
  models.toml (512 for a plain ``.gguf``).
* Each problem is a fresh one-message conversation (``eng.reset()``) sampled
  with the same ``--seed``, so a problem's answer does not depend on which
  problems ran before it (resumed runs give what a straight run gives).
* Before loading anything heavy, bad problem lines are reported as one-line
  warnings (``FILE:LINE: why; skipped``) and the rest go on; a missing file is
  an InputError.  Before generating, every pending prompt is checked against
  every evicting budget of the plan, so a too-small budget fails at once
  (PolicyError naming the problem and the smallest budget that works), not
  hours into a sweep.
* A rerun with nothing left to do does not load the model.
* Ctrl-C: finished problems are already on disk (each line fsynced); one
  line says how many are done and to rerun the same command; exit 130.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from raas_local import flags
from raas_local.argtypes import positive_float, positive_int, positive_int_list
from raas_local.errors import InputError, PolicyError
from raas_local.solve import output
from raas_local.solve.plan import Run, check_same_run, make_plan, run_info

__all__ = ["add_parser", "cmd_solve"]

DEFAULT_BUDGET = 512  # for models without a registry entry (the raas default, as `run`)
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
    # run's model, policy and sampling flags, minus its positional MODEL (PROBLEMS is the positional here)
    flags.add_model_flags(p, positional_model=False)
    flags.add_policy_flags(p, budget_help="KV cells per sequence, prompt included (default: the model's "
                                          f"recommended budget, else {DEFAULT_BUDGET})")
    flags.add_sampling_flags(p, max_tokens=DEFAULT_MAX_TOKENS)
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


def _tagged_writer(out: Path, info: dict[str, Any]):
    from raas_local.solve.results import ResultWriter

    class TaggedWriter(ResultWriter):
        """Adds this run's settings to every record."""

        def write(self, record: dict[str, Any]) -> None:
            super().write({**record, "run": info})

    return TaggedWriter(out)


def _count_prompt_tokens(eng, prompt: str) -> int:
    """Tokens the engine prefills for ``prompt`` as a fresh one-message conversation."""
    import llama_cpp

    text = eng.render([{"role": "user", "content": prompt}])
    n = len(eng.tokenize(text, add_bos=False))
    if llama_cpp.llama_vocab_get_add_bos(eng.vocab):
        bos_id = llama_cpp.llama_vocab_bos(eng.vocab)
        bos = eng.piece(bos_id).decode("utf-8", "replace") if bos_id >= 0 else ""
        if not (bos and text.startswith(bos)):
            n += 1
    return n


def _preflight(eng, runs: list[Run], pending: dict[str, list], template: str) -> None:
    """Fail now, not hours later, when a pending prompt leaves a budget no room to decode in."""
    from raas_local.solve.runner import render_prompt

    counted: dict[str, int] = {}
    for run in runs:
        worst: tuple[int, str, int] | None = None
        for p in pending[run.tag]:
            if p.id not in counted:
                counted[p.id] = _count_prompt_tokens(eng, render_prompt(template, p.problem))
            n = counted[p.id]
            if not run.policy.fits(n) and (worst is None or n > worst[2]):
                worst = (run.policy.min_budget(n), f"problem {p.id!r} has a prompt of {n} tokens", n)
        if worst is not None:
            need, what, n = worst
            raise PolicyError(
                f"{what}: {run.policy.kind} budget {run.policy.budget} leaves fewer than two pages "
                f"({need - n} cells) to decode in; use --budget {need} or more, or --policy dense"
            )


def cmd_solve(args) -> int:
    from raas_local.models import resolve_model
    from raas_local.solve.plan import metrics_path_beside
    from raas_local.solve.problems import load_problems
    from raas_local.solve.results import read_records, write_metrics
    from raas_local.solve.runner import DEFAULT_PROMPT_TEMPLATE, engine_generate_fn, solve
    from raas_local.thinking import DEFAULT_THINK_TAGS

    problems_path = _problems_path(args)
    problems, errors = load_problems(problems_path)
    for e in errors:
        print(f"raas-local: warning: {e}", file=sys.stderr)
    if args.limit is not None:
        problems = problems[: args.limit]
    if not problems:
        raise InputError(f"no valid problems in {problems_path}")

    model_path, spec = resolve_model(flags.model_arg(args))
    model_label = spec.name if spec is not None else model_path.stem
    budget = spec.recommended_budget if spec is not None else DEFAULT_BUDGET
    runs, sweep = make_plan(args, problems_path, model_label, budget)
    for run in runs:
        if run.out.resolve() == problems_path.resolve():
            raise InputError(f"OUT {run.out} is the problems file; pass another -o")
    sampling = flags.sampling_from_args(args, seed=args.seed)

    # What is left to do, per run (read before the model is loaded).
    infos = {run.tag: run_info(model_label, run, sampling) for run in runs}
    pending: dict[str, list] = {}
    for run in runs:
        done_records = read_records(run.out)
        check_same_run(run.out, done_records, infos[run.tag])
        done = {str(r["id"]) for r in done_records}
        pending[run.tag] = [p for p in problems if p.id not in done]

    eng = None
    template = spec.prompt_template if spec is not None else DEFAULT_PROMPT_TEMPLATE
    think_tags = DEFAULT_THINK_TAGS
    progress = not args.no_progress and sys.stderr.isatty()
    rows: list[dict] = []
    current: Run | None = None
    try:
        if any(pending[r.tag] for r in runs):
            first = next(r for r in runs if pending[r.tag])
            eng = flags.engine_from_args(args, first.policy)
            think_tags = eng.think_tags or DEFAULT_THINK_TAGS
            _preflight(eng, runs, pending, template)
        for i, run in enumerate(runs, start=1):
            current = run
            if pending[run.tag] and eng.policy != run.policy:
                eng.set_policy(run.policy)
            with _tagged_writer(run.out, infos[run.tag]) as writer:
                outcome = solve(
                    problems, writer, engine_generate_fn(eng, sampling) if eng is not None else _no_generation,
                    prompt_template=template, progress=progress, timeout=args.check_timeout,
                    think_tags=think_tags, description=run.tag if sweep else "solve",
                )
            metrics = output.metrics(outcome.records, run, model_label, sampling)
            metrics_path = write_metrics(metrics_path_beside(run.out), metrics)
            if outcome.interrupted:
                output.say_interrupted(run, len(outcome.records), len(problems), not args.out, sweep, i, len(runs))
                return 130
            rows.append(metrics)
            print(output.summary_line(run.tag if sweep else problems_path.name, metrics, len(problems),
                                      outcome.new, outcome.skipped))
            print(f"raas-local: results in {run.out}, metrics in {metrics_path}")
            sys.stdout.flush()
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
        json_path, md_path, md = output.write_sweep(runs[0].out.parent, problems_path, model_label, rows, sampling)
        print()
        print(md, end="")
        print(f"raas-local: sweep table in {md_path} and {json_path}")
    return 0


def _no_generation(prompt: str):  # pragma: no cover - only reached if resume bookkeeping is wrong
    raise AssertionError("every problem was already done; nothing should be generated")


def _done_ids(out: Path) -> set[str]:
    from raas_local.solve.results import read_records

    try:
        return {str(r["id"]) for r in read_records(out)}
    except InputError:
        return set()
