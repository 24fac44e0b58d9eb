"""Is a predicted answer equal to the gold one?

Three steps, cheapest first:

1. string equality after :func:`~raas_local.solve.normalize.normalize`;
2. numbers: two integers compare exactly; otherwise ints, decimals, ``a/b``,
   ``\\frac{a}{b}`` and percentages compare with
   ``math.isclose(rel_tol=1e-6, abs_tol=1e-9)``.  ``50%`` equals both
   ``50`` and ``0.5`` (either side may carry the ``%``).  When both sides are
   plain numbers this step decides: sympy is not needed;
3. symbols: both sides go through our own small LaTeX converter
   (:mod:`raas_local.solve.latex_sympy`) and sympy decides whether
   ``simplify(a - b) == 0`` (for constants, also a numeric check at the same
   tolerance).  This step runs in a worker process
   (:mod:`raas_local.solve.sympy_pool`) under ``timeout`` seconds; running
   out of time counts as *not equivalent* and is reported as ``timed_out`` so
   the runner can tally it.

Plain words (``Monday``, ``no solution``) also match case-insensitively.

Structure: a top-level comma list compares item by item.  Inside brackets
(``(1,2)``, ``[0,1)``) order and bracket kinds matter; a bare list
(``1, -2``: "enter all solutions") is compared as an unordered multiset.
Equations (one ``=``, after ``x = `` prefixes were dropped) match when
``lhs - rhs`` agree up to sign.  Answers longer than ``MAX_SYMBOLIC_CHARS``
get no symbolic check.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

from raas_local.solve.latex_sympy import to_sympy_syntax
from raas_local.solve.normalize import ABS_TOL, REL_TOL, normalize, number_candidates
from raas_local.solve.sympy_pool import WorkerError, default_pool, shutdown

__all__ = ["Verdict", "check_equivalence", "is_equivalent", "shutdown", "REL_TOL", "ABS_TOL"]

MAX_SYMBOLIC_CHARS = 400
_MAX_ITEMS = 16
_INT_RE = re.compile(r"[-+]?\d+")
_WORDS_RE = re.compile(r"[A-Za-z]{2,}(?: [A-Za-z]+)*")


@dataclass(frozen=True)
class Verdict:
    """The outcome of one comparison.

    ``method`` says which step decided: ``"string"``, ``"numeric"``,
    ``"symbolic"``, ``"timeout"``, or ``"none"`` (nothing matched, or an input
    was missing).
    """

    correct: bool
    timed_out: bool = False
    method: str = "none"


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def _split_top(s: str, sep: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for c in s:
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    parts.append("".join(cur))
    return parts


def _as_list(s: str) -> tuple[str, list[str]] | None:
    """``(brackets, items)`` if ``s`` is a comma list; brackets "" if bare."""
    # bracketed only if the opening bracket closes at the very end:
    # "(1)+(2)" is no tuple, "(1,2)" and "[0,1)" are
    if len(s) >= 2 and s[0] in "([" and s[-1] in ")]" and _balanced(s[1:-1]):
        items = _split_top(s[1:-1], ",")
        if len(items) > 1:
            return s[0] + s[-1], [p.strip() for p in items]
        return None
    items = _split_top(s, ",")
    if len(items) > 1:
        return "", [p.strip() for p in items]
    return None


def _balanced(s: str) -> bool:
    depth = 0
    for c in s:
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def _compare(a: str, b: str, deadline: _Deadline) -> Verdict:
    if a == b:
        return Verdict(True, method="string")
    la, lb = _as_list(a), _as_list(b)
    if la is None and lb is None:
        return _compare_atom(a, b, deadline)
    if la is None or lb is None or la[0] != lb[0] or len(la[1]) != len(lb[1]):
        return Verdict(False)
    if len(la[1]) > _MAX_ITEMS:
        return Verdict(False)
    timed_out = False
    if la[0]:  # bracketed: ordered
        for x, y in zip(la[1], lb[1]):
            v = _compare(x, y, deadline)
            if not v.correct:
                return Verdict(False, v.timed_out, "timeout" if v.timed_out else "none")
        return Verdict(True, method="list")
    unused = list(lb[1])
    for x in la[1]:
        for k, y in enumerate(unused):
            v = _compare(x, y, deadline)
            timed_out |= v.timed_out
            if v.correct:
                del unused[k]
                break
        else:
            return Verdict(False, timed_out, "timeout" if timed_out else "none")
    return Verdict(True, method="list")


def _compare_atom(a: str, b: str, deadline: _Deadline) -> Verdict:
    if a == b:
        return Verdict(True, method="string")
    if _INT_RE.fullmatch(a) and _INT_RE.fullmatch(b):
        # integers compare exactly: 1000001 is not 1000000, whatever rel_tol says
        return Verdict(int(a) == int(b), method="numeric")
    na, nb = number_candidates(a), number_candidates(b)
    if na is not None and nb is not None:
        ok = any(_close(x, y) for x in na for y in nb)
        return Verdict(ok, method="numeric")
    if _WORDS_RE.fullmatch(a) and a.casefold() == b.casefold():
        # plain words ("Monday", "yes") match without case; single letters
        # are variables and keep theirs.  A mismatch still goes on to sympy
        # ("xy" is "yx" there).
        return Verdict(True, method="string")
    return _compare_symbolic(a, b, deadline)


def _compare_symbolic(a: str, b: str, deadline: _Deadline) -> Verdict:
    if len(a) > MAX_SYMBOLIC_CHARS or len(b) > MAX_SYMBOLIC_CHARS:
        return Verdict(False)
    ea, eb = _split_top(a, "="), _split_top(b, "=")
    if len(ea) != len(eb) or len(ea) > 2:
        return Verdict(False)
    sides = []
    for parts in (ea, eb):
        conv = [to_sympy_syntax(p.strip()) for p in parts]
        if any(c is None for c in conv):
            return Verdict(False)  # outside our small language: no symbolic check
        sides.append(conv[0] if len(conv) == 1 else f"({conv[0]})-({conv[1]})")
    left = deadline.left()
    if left <= 0:
        return Verdict(False, True, "timeout")
    try:
        ok, timed_out = default_pool.compare(sides[0], sides[1], len(ea) == 2, left)
    except WorkerError:
        return Verdict(False)  # sympy could not parse or compare them: not equal
    if timed_out:
        return Verdict(False, True, "timeout")
    return Verdict(bool(ok), method="symbolic" if ok else "none")


def check_equivalence(pred: str | None, gold: str | None, timeout: float = 5.0) -> Verdict:
    """Compare ``pred`` with ``gold``; ``timeout`` bounds the symbolic step."""
    if pred is None or gold is None:
        return Verdict(False)
    a, b = normalize(pred), normalize(gold)
    if not a or not b:
        return Verdict(False)
    return _compare(a, b, _Deadline(timeout))


def is_equivalent(pred: str | None, gold: str | None, timeout: float = 5.0) -> bool:
    """True if ``pred`` and ``gold`` are the same answer (timeouts count as False)."""
    return check_equivalence(pred, gold, timeout).correct
