"""What one `raas-local solve` command runs, and where each run's files go.

* A run is one policy (kind and settings, budget included) over the problem
  set, written to its own OUT. OUT defaults to
  ``<problems stem>.<model>.<policy tag>.results.jsonl`` (the tag is
  ``raas-512``, or ``dense`` where no budget applies) in the current folder.
  The model is in the name because a results file is resumed: a run must
  never skip problems that another model solved.
* Metrics go to ``<OUT stem>.metrics.json`` beside OUT, so the runs of a sweep
  never overwrite each other.
* A sweep (``--policies`` and/or ``--budgets``) is every kind at every budget
  (dense once), each into its default-named OUT in the folder ``-o``.
* Every record carries a ``run`` object: the model, the policy's kind and
  settings, and the sampling settings. Resuming an OUT whose records came from
  another model or policy is refused; different sampling settings only warn.
* ``--budget`` defaults to the model's ``recommended_budget`` from
  models.toml (512 for a plain ``.gguf``).
* Before generating, every pending prompt is checked against every evicting
  budget of the plan (``preflight``), so a too-small budget fails at once
  (PolicyError naming the problem and the smallest budget that works), not
  hours into a sweep.

``plan_solve`` is what local ``solve`` and ``solve --ray``'s driver both run
before any problem: the runs, the sampling, and what is left to do per run.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raas_local import flags
from raas_local.errors import InputError, PolicyError

DEFAULT_BUDGET = 512  # for models without a registry entry (the raas default, as `run`)
SAMPLING_KEYS = ("max_tokens", "temperature", "top_p", "top_k", "seed")


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "model"


def default_out_name(problems: str | Path, model: str, policy) -> str:
    """``<problems stem>.<model>.<policy tag>.results.jsonl``."""
    return f"{Path(problems).stem}.{slug(model)}.{policy.tag}.results.jsonl"


def metrics_path_beside(out: str | Path) -> Path:
    """``<OUT stem>.metrics.json`` in OUT's folder (``.results.jsonl``/``.jsonl`` stripped)."""
    out = Path(out)
    name = out.name
    for suffix in (".results.jsonl", ".jsonl"):
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return out.parent / f"{name}.metrics.json"


@dataclass
class Run:
    policy: Any      # raas_local.policies.Policy
    out: Path

    @property
    def tag(self) -> str:
        return self.policy.tag


def default_budget(spec) -> int:
    """The budget of a run without ``--budget``: the registry entry's recommended one, else DEFAULT_BUDGET."""
    return spec.recommended_budget if spec is not None else DEFAULT_BUDGET


def model_label(spec, model_path: Path | None = None) -> str:
    """The model's name in file names and records: its registry name, else the GGUF file's stem."""
    return spec.name if spec is not None else Path(model_path).stem


def is_sweep(args) -> bool:
    return args.policies is not None or args.budgets is not None


def sampling_of(args):
    """solve's sampling: the sampling flags, every problem seeded with ``--seed``."""
    return flags.sampling_from_args(args, seed=args.seed)


def plan_policies(args, budget_default: int) -> list:
    """The policy of every run, in run order, each validated (flags.policies_from_args)."""
    kinds = args.policies or [args.policy.lower()]
    return flags.policies_from_args(args, kinds, args.budgets, defaults={"budget": budget_default})


def make_plan(args, problems_path: Path, model_label: str, budget_default: int) -> tuple[list[Run], bool]:
    """The runs to make (every policy validated before anything loads) and whether this is a sweep."""
    sweep = is_sweep(args)
    policies = plan_policies(args, budget_default)
    if not sweep:
        out = Path(args.out) if args.out else Path(default_out_name(problems_path, model_label, policies[0]))
        if out.is_dir():
            raise InputError(f"-o {out} is a folder; give a results file (OUT.jsonl)")
        return [Run(policies[0], out)], False
    folder = Path(args.out) if args.out else Path(".")
    if folder.suffix == ".jsonl" or (folder.exists() and not folder.is_dir()):
        raise InputError(f"in a sweep -o names a folder for the results files, not a file: {folder}")
    return [Run(p, folder / default_out_name(problems_path, model_label, p)) for p in policies], True


def run_info(model_label: str, run: Run, sampling) -> dict[str, Any]:
    """The ``run`` object every record of this run carries."""
    return {"model": model_label, **run.policy.as_dict(), **sampling.record()}


def _describe(info: dict[str, Any]) -> str:
    budget = "" if info.get("budget") is None else f" budget {info.get('budget')}"
    return f"model {info.get('model')}, policy {info.get('policy')}{budget}"


def check_same_run(out: Path, records: list[dict], info: dict[str, Any]) -> None:
    """Refuse to resume another run's file; warn when only the sampling differs."""
    identity = [k for k in info if k not in SAMPLING_KEYS]
    warned: set[str] = set()
    for r in records:
        old = r.get("run")
        if not isinstance(old, dict):
            continue
        differs = [k for k in identity if k in old and old[k] != info[k]]
        if differs:
            what = "" if differs[0] in ("model", "policy", "budget") else f" ({differs[0]} {old[differs[0]]})"
            raise InputError(
                f"{out} holds results of {_describe(old)}{what}, not {_describe(info)}"
                f"{'' if not what else f' ({differs[0]} {info[differs[0]]})'}; "
                "pass another -o, or remove the file to start over"
            )
        for k in SAMPLING_KEYS:
            if k in old and old[k] != info[k] and k not in warned:
                warned.add(k)
                print(f"raas-local: warning: {out}: earlier records used {k} {old[k]}, this run {info[k]}; "
                      "the file will mix both", file=sys.stderr)


@dataclass
class Plan:
    """What one solve command runs and what is left of it, read before any model loads."""

    runs: list[Run]
    sweep: bool
    sampling: Any            # raas_local.sampling.Sampling
    model_label: str
    infos: dict[str, dict]   # run tag -> the ``run`` object its records carry
    pending: dict[str, list]  # run tag -> problems without a record in the run's OUT
    total: int               # problems in the set

    @property
    def todo(self) -> int:
        return sum(len(v) for v in self.pending.values())

    def resumed(self, run: Run) -> int:
        """Problems of ``run`` already in its OUT when the command started."""
        return self.total - len(self.pending[run.tag])

    def first_pending(self) -> Run | None:
        """The first run with work left (the engine starts on its policy)."""
        return next((r for r in self.runs if self.pending[r.tag]), None)

    def writer(self, run: Run):
        """The resumable writer of ``run``'s OUT; every record it writes carries the run's settings."""
        from raas_local.solve.results import ResultWriter

        info = self.infos[run.tag]

        class TaggedWriter(ResultWriter):
            def write(self, record: dict[str, Any]) -> None:
                super().write({**record, "run": info})

        return TaggedWriter(run.out)


def plan_solve(args, problems: list, problems_path: Path, model_label: str, spec) -> Plan:
    """The plan of ``solve`` over ``problems``: runs, sampling, and each run's pending problems."""
    from raas_local.solve.results import read_records

    runs, sweep = make_plan(args, problems_path, model_label, default_budget(spec))
    for run in runs:
        if run.out.resolve() == problems_path.resolve():
            raise InputError(f"OUT {run.out} is the problems file; pass another -o")
    sampling = sampling_of(args)
    infos = {run.tag: run_info(model_label, run, sampling) for run in runs}
    pending: dict[str, list] = {}
    for run in runs:
        done_records = read_records(run.out)
        check_same_run(run.out, done_records, infos[run.tag])
        done = {str(r["id"]) for r in done_records}
        pending[run.tag] = [p for p in problems if p.id not in done]
    return Plan(runs, sweep, sampling, model_label, infos, pending, len(problems))


def dense_context_cells(problems: list, max_tokens: int) -> int:
    """KV cells per sequence that a kind keeping every token (dense, quest) needs to solve ``problems``:
    the longest prompt's UTF-8 bytes (a token is never less than a byte), 512 for the chat template's
    own text, and the tokens generated. Without it such a context has the model's training length, for
    each of --parallel N sequences: an 8B model trained on 128k tokens would ask for 16 GiB of KV at
    N = 1 and 128 GiB at N = 8."""
    from raas_local.solve.runner import DEFAULT_PROMPT_TEMPLATE, render_prompt

    return max(len(render_prompt(DEFAULT_PROMPT_TEMPLATE, p.problem).encode()) for p in problems) + 512 + max_tokens


def count_prompt_tokens(eng, prompt: str) -> int:
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


def preflight(eng, runs: list[Run], pending: dict[str, list], template: str) -> None:
    """Fail now, not hours later, when a pending prompt leaves a budget no room to decode in."""
    from raas_local.solve.runner import render_prompt

    counted: dict[str, int] = {}
    for run in runs:
        worst: tuple[int, str, int] | None = None
        for p in pending[run.tag]:
            if p.id not in counted:
                counted[p.id] = count_prompt_tokens(eng, render_prompt(template, p.problem))
            n = counted[p.id]
            if not run.policy.fits(n) and (worst is None or n > worst[2]):
                worst = (run.policy.min_budget(n), f"problem {p.id!r} has a prompt of {n} tokens", n)
        if worst is not None:
            need, what, n = worst
            raise PolicyError(
                f"{what}: {run.policy.kind} budget {run.policy.budget} leaves fewer than two pages "
                f"({need - n} cells) to decode in; use --budget {need} or more, or --policy dense"
            )
