"""Read a problems JSONL file.

One JSON object per line:

* ``id``: a string or integer (kept as a string, so ``1`` and ``"1"`` are the
  same id); if absent, the 1-based line number;
* ``problem`` or ``question``: the text given to the model;
* ``answer`` or ``solution`` (``answer`` wins when both are present): the gold
  answer is taken with :func:`~raas_local.solve.answer.gold_answer` when the
  text holds ``#### N`` or ``\\boxed{}`` (GSM8K's ``answer`` is a whole
  solution), else the ``answer`` is used as the plain value it is (a JSON
  number or a short string).  A ``solution`` must hold one of the markers.

A bad line (invalid JSON, not an object, no problem, no usable answer, a
duplicate id) is skipped and reported as one line ``FILE:LINE: why``; the rest
still loads.  Blank lines are ignored.  For a duplicate id the first wins.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from raas_local.errors import InputError
from raas_local.solve.answer import gold_answer

__all__ = ["Problem", "load_problems", "parse_problem_lines"]


@dataclass(frozen=True)
class Problem:
    id: str
    problem: str
    gold: str
    line: int  # 1-based line in the source file


def _gold_from(obj: dict) -> tuple[str | None, str | None]:
    """``(gold, None)`` or ``(None, why not)``."""
    if "answer" in obj and obj["answer"] is not None:
        ans = obj["answer"]
        if isinstance(ans, bool):
            return None, "'answer' must be a number or a string, not a boolean"
        if isinstance(ans, (int, float)):
            return str(ans), None
        if not isinstance(ans, str):
            return None, "'answer' must be a number or a string"
        if "####" in ans or "\\boxed" in ans or "\\fbox" in ans:
            gold = gold_answer(ans)
            return (gold, None) if gold else (None, "'answer' has an empty #### or \\boxed{}")
        ans = ans.strip()
        return (ans, None) if ans else (None, "'answer' is empty")
    if "solution" in obj and obj["solution"] is not None:
        sol = obj["solution"]
        if not isinstance(sol, str):
            return None, "'solution' must be a string"
        gold = gold_answer(sol)
        if gold is None:
            return None, "no gold answer in 'solution' (needs \\boxed{...} or '#### N')"
        return gold, None
    return None, "missing 'answer' or 'solution'"


def parse_problem_lines(lines, source: str = "<problems>") -> tuple[list[Problem], list[str]]:
    """Parse JSONL lines; returns ``(problems, errors)`` (see the module docstring)."""
    problems: list[Problem] = []
    errors: list[str] = []
    first_line: dict[str, int] = {}
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue

        def bad(why: str) -> None:
            errors.append(f"{source}:{lineno}: {why}; skipped")

        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            bad(f"invalid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(obj, dict):
            bad(f"not a JSON object (got {type(obj).__name__})")
            continue
        text = obj.get("problem", obj.get("question"))
        if not isinstance(text, str) or not text.strip():
            bad("missing 'problem' or 'question'")
            continue
        gold, why = _gold_from(obj)
        if gold is None:
            bad(why or "no gold answer")
            continue
        pid = obj.get("id", lineno)
        if isinstance(pid, bool) or not isinstance(pid, (str, int)):
            bad("'id' must be a string or an integer")
            continue
        pid = str(pid)
        if pid in first_line:
            bad(f"duplicate id {pid!r} (first on line {first_line[pid]})")
            continue
        first_line[pid] = lineno
        problems.append(Problem(id=pid, problem=text, gold=gold, line=lineno))
    return problems, errors


def load_problems(path: str | Path) -> tuple[list[Problem], list[str]]:
    """Read ``path``; returns ``(problems, errors)``.

    Raises InputError only when the file itself cannot be read.
    """
    path = Path(path)
    try:
        # utf-8-sig: a BOM (Windows editors) must not break the first line
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"problems file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read problems file {path}: {exc}") from None
    return parse_problem_lines(text.split("\n"), source=str(path))
