"""``raas-local solve``: batch math solving on the real engine, resumable.

::

    raas-local solve [PROBLEMS.jsonl | --sample] [-o OUT] [-m MODEL]
                     [--policy P] [--budget L] [-n MAX_TOKENS] [--temp T] [-s SEED]
                     [--limit N] [--policies raas,dense --budgets 256,512,1024]

PROBLEMS is the only positional argument; the model comes with ``-m``
(registry name, ``.gguf`` path or ``org/repo[:quant]``; default: the embedded
SmolLM2-135M).  The other flags are llama.cpp's (``-c``, ``-ngl``, ``-fa``,
``-t``, ``-s``, ``-n``, ``--temp``, ``--top-p``, ``--top-k``) plus
``--policy``, ``--budget``, ``--page-size``, ``--refresh-ratio``.

Files (decisions):

* OUT defaults to ``<problems stem>.<model>.<policy>-<budget>.results.jsonl``
  (``<stem>.<model>.dense.results.jsonl`` for dense, where no budget applies)
  in the current directory.  The model is in the name because a results file
  is resumed: a run must never skip problems that another model solved.
* Metrics go to ``<OUT stem>.metrics.json`` beside OUT (``.results.jsonl`` or
  ``.jsonl`` stripped: ``run.results.jsonl`` -> ``run.metrics.json``), not a
  shared ``metrics.json``, so the runs of a sweep never overwrite each other.
* Every record carries a ``run`` object (model, policy, budget, page size,
  refresh ratio and the sampling settings).  Resuming an OUT whose records
  came from another model, policy or budget is refused (InputError: pass
  another ``-o``); different sampling settings only warn.
* A sweep (``--policies`` and/or ``--budgets``) runs every (policy, budget)
  pair, dense once, each into its own default-named OUT in the folder ``-o``
  (default: the current directory), reusing one Engine (``set_policy``), then
  prints the table (markdown) and writes ``<stem>.<model>.sweep.md`` and
  ``.sweep.json`` there.
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
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raas_local.argtypes import positive_float, positive_int, positive_int_list
from raas_local.errors import InputError, PolicyError

__all__ = ["add_parser", "cmd_solve", "default_out_name", "metrics_path_beside"]

DEFAULT_BUDGET = 512  # for models without a registry entry (same as `run`)
DEFAULT_MAX_TOKENS = 2048
NO_BUDGET_KINDS = ("dense",)  # policies whose budget does not apply (run once in a sweep)
_IDENTITY = ("model", "policy", "budget", "page_size", "refresh_ratio")


# -- argument parsing ----------------------------------------------------------


def _name_list(text: str) -> list[str]:
    items = [t.strip().lower() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("empty list")
    return list(dict.fromkeys(items))


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``solve`` to the top-level CLI's subparsers."""
    from raas_local.cli import add_model_flags, add_sampling_flags

    sampling = argparse.ArgumentParser(add_help=False)
    add_sampling_flags(sampling, max_tokens=DEFAULT_MAX_TOKENS)
    d = sampling.parse_args([])
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
            "to <stem>.<model>.sweep.md and .sweep.json there. "
            f"Sampling defaults: -n {d.max_tokens}, --temp {d.temp}, --top-p {d.top_p}, --top-k {d.top_k}; "
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
    # run's model and cache flags, minus its positional MODEL (PROBLEMS is the positional here)
    add_model_flags(p, positional_model=False, budget_default=None,
                    budget_help=f"KV cells per sequence, prompt included (default: the model's recommended budget, else {DEFAULT_BUDGET})")
    add_sampling_flags(p, max_tokens=DEFAULT_MAX_TOKENS)
    # --- issue 15: solve on a Ray cluster (raas_local/solve/ray_driver.py) ---
    from raas_local.solve.ray_cluster import parse_address

    p.add_argument("--ray", nargs="?", const="local", default=None, type=parse_address, metavar="ADDRESS",
                   help="solve on Ray: no ADDRESS starts a local instance; auto, HOST:PORT or ray://HOST:PORT "
                        "joins a cluster (needs: pip install 'raas-local[ray]')")
    p.add_argument("--workers", type=positive_int, default=None, metavar="K",
                   help="with --ray: worker actors (default: one per GPU with -ngl, else the cluster's CPUs / threads)")
    # --- end issue 15 ---
    p.set_defaults(func=cmd_solve)
    return p


# -- names -------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "model"


def _run_tag(policy: str, budget: int | None) -> str:
    return policy if budget is None else f"{policy}-{budget}"


def default_out_name(problems: str | Path, model: str, policy: str, budget: int | None) -> str:
    """``<problems stem>.<model>.<policy>-<budget>.results.jsonl`` (no budget: ``.<policy>.``)."""
    return f"{Path(problems).stem}.{_slug(model)}.{_run_tag(policy, budget)}.results.jsonl"


def metrics_path_beside(out: str | Path) -> Path:
    """``<OUT stem>.metrics.json`` in OUT's folder (``.results.jsonl``/``.jsonl`` stripped)."""
    out = Path(out)
    name = out.name
    for suffix in (".results.jsonl", ".jsonl"):
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return out.parent / f"{name}.metrics.json"


# -- the plan ----------------------------------------------------------------------


@dataclass
class _Run:
    policy: str
    budget: int | None  # None: the policy takes no budget (dense)
    out: Path

    @property
    def tag(self) -> str:
        return _run_tag(self.policy, self.budget)


def _cache_policy(args, kind: str, budget: int | None):
    from raas_local.policies import CachePolicy

    return CachePolicy(kind=kind, budget=budget if budget is not None else args.budget,
                       page_size=args.page_size, refresh_ratio=args.refresh_ratio)


def _plan(args, problems_path: Path, model_label: str) -> tuple[list[_Run], bool]:
    """The runs to make and whether this is a sweep."""
    sweep = args.policies is not None or args.budgets is not None
    policies = args.policies or [args.policy.lower()]
    budgets = args.budgets or [args.budget]
    pairs: list[tuple[str, int | None]] = []
    for kind in policies:
        if kind in NO_BUDGET_KINDS:
            pairs.append((kind, None))
        else:
            pairs.extend((kind, b) for b in budgets)
    for kind, b in pairs:  # validate every policy before loading anything
        _cache_policy(args, kind, b)
    if not sweep:
        kind, b = pairs[0]
        out = Path(args.out) if args.out else Path(default_out_name(problems_path, model_label, kind, b))
        if out.is_dir():
            raise InputError(f"-o {out} is a folder; give a results file (OUT.jsonl)")
        return [_Run(kind, b, out)], False
    folder = Path(args.out) if args.out else Path(".")
    if folder.suffix == ".jsonl" or (folder.exists() and not folder.is_dir()):
        raise InputError(f"in a sweep -o names a folder for the results files, not a file: {folder}")
    return [_Run(k, b, folder / default_out_name(problems_path, model_label, k, b)) for k, b in pairs], True


# -- record tags -----------------------------------------------------------------


def _run_info(args, model_label: str, run: _Run) -> dict[str, Any]:
    no_budget = run.budget is None
    return {
        "model": model_label,
        "policy": run.policy,
        "budget": run.budget,
        "page_size": None if no_budget else args.page_size,
        "refresh_ratio": None if no_budget or run.policy != "raas" else args.refresh_ratio,
        "max_tokens": args.max_tokens,
        "temperature": args.temp,
        "top_p": args.top_p,
        "top_k": args.top_k,
        "seed": args.seed,
    }


def _describe(info: dict[str, Any]) -> str:
    budget = "" if info.get("budget") is None else f" budget {info.get('budget')}"
    return f"model {info.get('model')}, policy {info.get('policy')}{budget}"


def _check_same_run(out: Path, records: list[dict], info: dict[str, Any]) -> None:
    """Refuse to resume another run's file; warn when only the sampling differs."""
    warned: set[str] = set()
    for r in records:
        old = r.get("run")
        if not isinstance(old, dict):
            continue
        if any(k in old and old[k] != info[k] for k in _IDENTITY):
            raise InputError(
                f"{out} holds results of {_describe(old)}, not {_describe(info)}; "
                "pass another -o, or remove the file to start over"
            )
        for k in ("max_tokens", "temperature", "top_p", "top_k", "seed"):
            if k in old and old[k] != info[k] and k not in warned:
                warned.add(k)
                print(f"raas-local: warning: {out}: earlier records used {k} {old[k]}, this run {info[k]}; "
                      "the file will mix both", file=sys.stderr)


def _tagged_writer(out: Path, info: dict[str, Any]):
    from raas_local.solve.results import ResultWriter

    class TaggedWriter(ResultWriter):
        """Adds this run's settings to every record."""

        def write(self, record: dict[str, Any]) -> None:
            super().write({**record, "run": info})

    return TaggedWriter(out)


# -- the engine side -----------------------------------------------------------------


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


def _preflight(eng, args, runs: list[_Run], pending: dict[str, list], template: str) -> None:
    """Fail now, not hours later, when a pending prompt cannot fit an evicting budget."""
    from raas_local.solve.runner import render_prompt

    worst: tuple[int, str] | None = None
    counted: dict[str, int] = {}
    for run in runs:
        if run.budget is None or not _cache_policy(args, run.policy, run.budget).evicts:
            continue
        for p in pending[run.tag]:
            if p.id not in counted:
                counted[p.id] = _count_prompt_tokens(eng, render_prompt(template, p.problem))
            n = counted[p.id]
            need = n + 2 * args.page_size
            if need > run.budget and (worst is None or need > worst[0]):
                worst = (need, f"problem {p.id!r} has a prompt of {n} tokens")
        if worst is not None:
            need, what = worst
            raise PolicyError(
                f"{what}: budget {run.budget} leaves fewer than two pages ({2 * args.page_size} cells) to decode in; "
                f"use --budget {need} or more, or --policy dense"
            )


def _generate_fn(eng, args):
    from raas_local.solve.runner import engine_generate_fn

    return engine_generate_fn(eng, max_tokens=args.max_tokens, temperature=args.temp,
                              top_p=args.top_p, top_k=args.top_k, seed=args.seed)


# -- output --------------------------------------------------------------------


def _metrics(records: list[dict], run: _Run, model_label: str, args) -> dict[str, Any]:
    from raas_local.solve.results import compute_metrics

    m = compute_metrics(records, run.policy, run.budget, model_label)
    m["truncated"] = sum(1 for r in records if r.get("finish_reason") == "length")
    m["evictions"] = sum(r.get("evictions") or 0 for r in records if isinstance(r.get("evictions"), int))
    m["max_tokens"] = args.max_tokens
    m["temperature"] = args.temp
    m["seed"] = args.seed
    m["results"] = str(run.out)
    return m


def _summary(name: str, m: dict[str, Any], total: int, new: int, resumed: int) -> str:
    acc = "n/a" if m["accuracy"] is None else f"{100 * m['accuracy']:.1f}%"
    mean = "n/a" if m["mean_generated_tokens"] is None else f"{m['mean_generated_tokens']:.1f}"
    tps = "n/a" if m["tok_per_s"] is None else f"{m['tok_per_s']:.1f}"
    budget = "" if m["budget"] is None else f" budget {m['budget']}"
    return (
        f"raas-local: {name}: {m['n']}/{total} problems ({new} new, {resumed} resumed) | "
        f"accuracy {acc} ({m['correct']}/{m['n']}), answered {m['answered']}, truncated {m['truncated']}, "
        f"timeouts {m['timeouts']} | mean {mean} tokens, {tps} tok/s, peak KV {m['peak_kv_cells']} cells | "
        f"{m['policy']}{budget} | {m['model']}"
    )


def _write_sweep(folder: Path, stem: str, model_label: str, rows: list[dict], args, problems_path: Path) -> tuple[Path, Path, str]:
    from raas_local.solve.results import write_metrics
    from raas_local.solve.runner import sweep_table

    md, table_rows = sweep_table(rows)
    base = f"{stem}.{_slug(model_label)}.sweep"
    json_path = write_metrics(folder / f"{base}.json", {
        "model": model_label,
        "problems": str(problems_path),
        "max_tokens": args.max_tokens,
        "temperature": args.temp,
        "seed": args.seed,
        "table": table_rows,
        "runs": rows,
    })
    md_path = folder / f"{base}.md"
    header = (f"raas-local solve sweep: {problems_path.name}, model {model_label}, "
              f"max tokens {args.max_tokens}, temperature {args.temp}, seed {args.seed}\n\n")
    md_path.write_text(header + md, encoding="utf-8")
    return json_path, md_path, md


# -- the command -------------------------------------------------------------------


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
    from raas_local.solve.results import read_records, write_metrics
    from raas_local.solve.runner import DEFAULT_PROMPT_TEMPLATE, solve
    from raas_local.solve.answer import DEFAULT_THINK_TAGS

    problems_path = _problems_path(args)
    problems, errors = load_problems(problems_path)
    for e in errors:
        print(f"raas-local: warning: {e}", file=sys.stderr)
    if args.limit is not None:
        problems = problems[: args.limit]
    if not problems:
        raise InputError(f"no valid problems in {problems_path}")
    if args.ray is not None:  # issue 15: the Ray driver takes over from here (raas_local/solve/ray_driver.py)
        from raas_local.solve.ray_driver import solve_on_ray

        return solve_on_ray(args, problems, problems_path)
    if args.workers is not None:
        raise InputError("--workers needs --ray")

    model_arg = args.model_flag or args.model
    model_path, spec = resolve_model(model_arg)
    model_label = spec.name if spec is not None else model_path.stem
    if args.budget is None:
        args.budget = spec.recommended_budget if spec is not None else DEFAULT_BUDGET
    runs, sweep = _plan(args, problems_path, model_label)
    for run in runs:
        if run.out.resolve() == problems_path.resolve():
            raise InputError(f"OUT {run.out} is the problems file; pass another -o")

    # What is left to do, per run (read before the model is loaded).
    infos = {run.tag: _run_info(args, model_label, run) for run in runs}
    pending: dict[str, list] = {}
    for run in runs:
        done_records = read_records(run.out)
        _check_same_run(run.out, done_records, infos[run.tag])
        done = {str(r["id"]) for r in done_records}
        pending[run.tag] = [p for p in problems if p.id not in done]

    eng = None
    template = spec.prompt_template if spec is not None else DEFAULT_PROMPT_TEMPLATE
    think_tags = DEFAULT_THINK_TAGS
    progress = not args.no_progress and sys.stderr.isatty()
    rows: list[dict] = []
    current: _Run | None = None
    writer = None
    try:
        if any(pending[r.tag] for r in runs):
            from raas_local.cli import engine_from_args

            first = next(r for r in runs if pending[r.tag])
            args.policy = first.policy
            if first.budget is not None:
                args.budget = first.budget
            eng = engine_from_args(args)
            if eng.spec is not None:
                template = eng.spec.prompt_template
            think_tags = eng.think_tags or DEFAULT_THINK_TAGS
            _preflight(eng, args, runs, pending, template)
        for i, run in enumerate(runs, start=1):
            current = run
            if pending[run.tag] and eng is not None:
                policy = _cache_policy(args, run.policy, run.budget)
                if policy != eng.policy:
                    eng.set_policy(policy)
            writer = _tagged_writer(run.out, infos[run.tag])
            with writer:
                outcome = solve(
                    problems, writer, _generate_fn(eng, args) if eng is not None else _no_generation,
                    prompt_template=template, progress=progress, timeout=args.check_timeout,
                    think_tags=think_tags, description=run.tag if sweep else "solve",
                )
            metrics = _metrics(outcome.records, run, model_label, args)
            metrics_path = write_metrics(metrics_path_beside(run.out), metrics)
            if outcome.interrupted:
                _say_interrupted(run, len(outcome.records), len(problems), args, sweep, i, len(runs))
                return 130
            rows.append(metrics)
            print(_summary(run.tag if sweep else problems_path.name, metrics, len(problems),
                           outcome.new, outcome.skipped))
            print(f"raas-local: results in {run.out}, metrics in {metrics_path}")
            sys.stdout.flush()
    except KeyboardInterrupt:
        # outside a problem (loading the model, switching policy, writing metrics)
        if current is None:
            print(f"{_nl()}raas-local: interrupted before any problem ran; rerun the same command to start",
                  file=sys.stderr)
        else:
            ids = _done_ids(current.out)
            done = sum(1 for p in problems if p.id in ids)
            _say_interrupted(current, done, len(problems), args, sweep, runs.index(current) + 1, len(runs))
        return 130
    finally:
        if eng is not None:
            eng.close()
    if sweep:
        folder = runs[0].out.parent
        json_path, md_path, md = _write_sweep(folder, problems_path.stem, model_label, rows, args, problems_path)
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


def _nl() -> str:
    """A newline first on a terminal, where ^C and the progress bar share the line."""
    return "\n" if sys.stderr.isatty() else ""


def _say_interrupted(run: _Run, done: int, total: int, args, sweep: bool, i: int, n_runs: int) -> None:
    where = f" ({run.tag}, run {i} of {n_runs})" if sweep else ""
    folder = "" if args.out else " in the same folder"
    print(f"{_nl()}raas-local: interrupted: {done}/{total} problems done{where}, saved in {run.out}; "
          f"rerun the same command{folder} to resume", file=sys.stderr)
