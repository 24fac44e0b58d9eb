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
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raas_local import flags
from raas_local.errors import InputError

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


def make_plan(args, problems_path: Path, model_label: str, budget_default: int) -> tuple[list[Run], bool]:
    """The runs to make (every policy validated before anything loads) and whether this is a sweep."""
    sweep = args.policies is not None or args.budgets is not None
    kinds = args.policies or [args.policy.lower()]
    policies = flags.policies_from_args(args, kinds, args.budgets, defaults={"budget": budget_default})
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
