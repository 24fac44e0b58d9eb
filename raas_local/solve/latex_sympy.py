"""A small LaTeX-ish -> sympy-syntax converter, and the parser that reads it.

We deliberately do not use ``sympy.parsing.latex`` (it needs antlr).  The
answers we meet are short: fractions, roots, powers, pi, products, a few
functions.  :func:`to_sympy_syntax` rewrites a *normalised* answer (see
:mod:`raas_local.solve.normalize`) into a string that
``sympy.parsing.sympy_parser.parse_expr`` reads, or returns None when the
answer uses anything outside that small language.  None means "no symbolic
check", never "equal".

Safety: ``parse_expr`` evaluates Python, and the input is model output.  So
the converted string may only contain digits, operators, parentheses, the
whitelisted function names and single-letter variables (multi-letter words are
split into letters, ``xy`` -> ``x y``, which is also what implicit
multiplication means in maths); anything else is refused here, before parsing.
"""

from __future__ import annotations

import re

__all__ = ["to_sympy_syntax", "parse_sympy"]

_FUNCS = {"sqrt", "sin", "cos", "tan", "cot", "sec", "csc", "log", "exp",
          "asin", "acos", "atan", "pi", "oo", "abs"}

_COMMANDS = {
    r"\pi": " pi ", r"\infty": " oo ", r"\cdot": "*", r"\times": "*", r"\div": "/",
    r"\sin": " sin", r"\cos": " cos", r"\tan": " tan", r"\cot": " cot",
    r"\sec": " sec", r"\csc": " csc", r"\ln": " log", r"\log": " log",
    r"\exp": " exp", r"\arcsin": " asin", r"\arccos": " acos", r"\arctan": " atan",
}

_ALLOWED = re.compile(r"[A-Za-z0-9+\-*/^().! ]*")


def _group(s: str, i: int) -> tuple[str, int] | None:
    """The argument starting at ``s[i]``: a brace group or one character."""
    while i < len(s) and s[i] == " ":
        i += 1
    if i >= len(s):
        return None
    if s[i] != "{":
        return s[i], i + 1
    depth = 0
    for j in range(i, len(s)):
        if s[j] == "{":
            depth += 1
        elif s[j] == "}":
            depth -= 1
            if depth == 0:
                return s[i + 1:j], j + 1
    return None


def _convert(s: str) -> str | None:
    out: list[str] = []
    i = 0
    while i < len(s):
        if s.startswith(r"\frac", i):
            num = _group(s, i + 5)
            den = _group(s, num[1]) if num else None
            if not (num and den):
                return None
            a, b = _convert(num[0]), _convert(den[0])
            if a is None or b is None:
                return None
            out.append(f"(({a})/({b}))")
            i = den[1]
            continue
        if s.startswith(r"\sqrt", i):
            j = i + 5
            index = None
            if j < len(s) and s[j] == "[":
                k = s.find("]", j)
                if k < 0:
                    return None
                index = _convert(s[j + 1:k])
                if index is None:
                    return None
                j = k + 1
            arg = _group(s, j)
            if not arg:
                return None
            inner = _convert(arg[0])
            if inner is None:
                return None
            out.append(f" sqrt({inner})" if index is None else f"(({inner})**(1/({index})))")
            i = arg[1]
            continue
        if s[i] == "\\":
            m = re.match(r"\\[A-Za-z]+", s[i:])
            if not m or m.group(0) not in _COMMANDS:
                return None  # unknown command (sets, matrices, \{ ...): no symbolic check
            out.append(_COMMANDS[m.group(0)])
            i += m.end()
            continue
        if s[i] == "{":
            out.append("(")
        elif s[i] == "}":
            out.append(")")
        else:
            out.append(s[i])
        i += 1
    return "".join(out)


def _split_words(s: str) -> str:
    def fix(m: re.Match[str]) -> str:
        word = m.group(0)
        return f" {word} " if word in _FUNCS else " " + " ".join(word) + " "

    return re.sub(r"[A-Za-z]+", fix, s)


def to_sympy_syntax(s: str) -> str | None:
    """sympy-parsable text for a normalised answer, or None if unsupported."""
    conv = _convert(s)
    if conv is None or not _ALLOWED.fullmatch(conv) or not conv.strip():
        return None
    conv = _split_words(conv).replace("^", "**")
    # spaces matter only between two operands (implicit multiplication)
    conv = re.sub(r"\s*([-+*/()!])\s*", r"\1", conv)
    return re.sub(r"\s+", " ", conv).strip()


def parse_sympy(text: str):
    """Parse text made by :func:`to_sympy_syntax` (runs in the worker process)."""
    import string

    import sympy
    from sympy.parsing.sympy_parser import (
        convert_xor,
        implicit_multiplication_application,
        parse_expr,
        standard_transformations,
    )

    # Every letter is a plain symbol: without this, E, I, N, O, Q, S would be
    # sympy objects (and "N" a function), so the two sides would not agree.
    local = {c: sympy.Symbol(c) for c in string.ascii_letters}
    local.update(
        pi=sympy.pi, oo=sympy.oo, sqrt=sympy.sqrt, sin=sympy.sin, cos=sympy.cos,
        tan=sympy.tan, cot=sympy.cot, sec=sympy.sec, csc=sympy.csc, log=sympy.log,
        exp=sympy.exp, asin=sympy.asin, acos=sympy.acos, atan=sympy.atan, abs=sympy.Abs,
    )
    transformations = standard_transformations + (implicit_multiplication_application, convert_xor)
    return parse_expr(text, local_dict=local, transformations=transformations)
