"""Normalise answer strings and read plain numbers out of them.

Decisions (each step is a small, documented rewrite; order matters):

* Wrappers go: surrounding ``$``/``\\(\\)``/``\\[\\]``, a whole-string
  ``\\boxed{}``, ``\\text{}``/``\\textbf{}``/``\\mathrm{}``/``\\mbox{}`` (their
  content is kept), ``\\left``/``\\right``, the spacing commands ``\\! \\, \\; \\:``,
  ``\\displaystyle``.
* ``\\dfrac``/``\\tfrac`` -> ``\\frac``; ``\\frac12`` -> ``\\frac{1}{2}``;
  ``\\sqrt2`` -> ``\\sqrt{2}``.
* Degrees: ``^\\circ``, ``^{\\circ}``, ``\\circ``, ``°`` are dropped, with a
  ``C``/``F`` right after them (an angle of 30 degrees equals 30).
* Money: ``\\$`` and ``$`` are dropped.
* Percent: ``\\%`` and the word "percent" become ``%``; a trailing ``%`` is
  kept here and handled by :func:`parse_number`, which reads ``50%`` as either
  50 or 0.5 (both are accepted as equal, since graders and models disagree on
  which one "the answer" is).
* Unit words (dollars, cm, meters, degrees, units, hours, ...; see ``UNITS``)
  are dropped as whole words, and so is any trailing run of plain words after
  a number ("18 apples" -> "18"), so long as each has 3+ letters and is not
  maths (``pi``, ``sqrt``, ...): "2 x" stays.
* A leading single-variable assignment goes: ``x = 5`` -> ``5``.
* Thousands commas are removed only when the *whole* answer is one number in
  strict groups of three (``1,000`` and ``-12,345.5``; also LaTeX ``1{,}000``).
  ``1,2`` or ``(1,000, 2)`` stay as they are: those are lists/tuples.
* Trailing ``.`` goes; whitespace goes except a single space between two
  letters (``\\pi r`` must not become ``\\pir``).
"""

from __future__ import annotations

import math
import re

__all__ = ["normalize", "parse_number", "number_candidates", "UNITS", "REL_TOL", "ABS_TOL"]

# Tolerances for "the same number" (used by the numeric and symbolic steps).
REL_TOL = 1e-6
ABS_TOL = 1e-9

# Whole words only.  Single letters ("m", "g", "s") are left out on purpose:
# they are far more often variables than units.
UNITS = (
    "dollars dollar cents cent usd euros euro pounds pound lbs lb "
    "centimeters centimetres centimeter centimetre cm millimeters millimeter mm "
    "meters metres meter metre km kilometers kilometres kilometer kilometre "
    "inches inch feet foot ft yards yard yd miles mile mph kph "
    "square sq cubic units unit "
    "degrees degree deg radians radian "
    "seconds second sec minutes minute min hours hour hrs hr days day "
    "weeks week months month years year "
    "grams gram kg kilograms kilogram liters litres liter litre ml gallons gallon "
    "ounces ounce oz"
).split()

_MATH_WORDS = {
    "pi", "sqrt", "frac", "infty", "oo", "sin", "cos", "tan", "cot", "sec", "csc",
    "log", "ln", "exp", "and", "or", "i", "e",
}

_UNIT_RE = re.compile(r"(?<![\\A-Za-z])(?:" + "|".join(UNITS) + r")(?:\^?\{?[23]\}?)?(?![A-Za-z])",
                      re.IGNORECASE)
_TEXT_CMD_RE = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{")
_THOUSANDS_RE = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")


def _unwrap_commands(s: str, cmd_re: re.Pattern[str]) -> str:
    """Replace ``\\cmd{content}`` by ``content`` (nested braces allowed)."""
    while True:
        m = cmd_re.search(s)
        if not m:
            return s
        start = m.end() - 1
        depth, i = 0, start
        while i < len(s):
            if s[i] == "{":
                depth += 1
            elif s[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        if depth != 0:
            return s[:m.start()] + s[m.end():]  # unbalanced: drop the command only
        s = s[:m.start()] + s[start + 1:i] + s[i + 1:]


def _strip_outer(s: str) -> str:
    changed = True
    while changed:
        changed = False
        s = s.strip()
        for a, b in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
            if len(s) >= len(a) + len(b) and s.startswith(a) and s.endswith(b):
                s, changed = s[len(a):len(s) - len(b)], True
        m = re.fullmatch(r"\\(?:boxed|fbox)\s*\{(.*)\}", s, re.DOTALL)
        if m:
            s, changed = m.group(1), True
    return s


def normalize(s: str | None) -> str:
    """Canonical form of an answer string (see the module docstring)."""
    if s is None:
        return ""
    s = _strip_outer(str(s))
    s = s.replace("\n", " ")
    s = _unwrap_commands(s, _TEXT_CMD_RE)
    s = re.sub(r"\\(?:left|right)(?![A-Za-z])", "", s)
    s = re.sub(r"\\(?:displaystyle|bigl|bigr|Bigl|Bigr|big|Big)(?![A-Za-z])", "", s)
    s = re.sub(r"\\[!,;:]|\\ |~", " ", s)
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    s = re.sub(r"\\frac\s*(\d)\s*(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\sqrt\s*(\d+|[A-Za-z])", r"\\sqrt{\1}", s)
    # degrees
    s = re.sub(r"(?:\^\s*\{?\s*\\circ\s*\}?|\\circ|°)(?:\s*[CF](?![A-Za-z]))?", "", s)
    # percent
    s = s.replace("\\%", "%")
    s = re.sub(r"\s*\b(?:percent|per\s*cent)\b", "%", s, flags=re.IGNORECASE)
    # money
    s = s.replace("\\$", "").replace("$", "")
    s = s.replace("{,}", ",")
    # units, then a trailing run of plain words after a number
    s = _UNIT_RE.sub(" ", s)
    m = re.fullmatch(r"\s*([-+]?[\d.,/]*\d%?)\s+([A-Za-z][A-Za-z\s'-]*)", s)
    if m:
        words = m.group(2).lower().split()
        # "2 x" is maths, not "2 of something": only words of 3+ letters go
        if all(len(w) >= 3 and w not in _MATH_WORDS for w in words):
            s = m.group(1)
    # "x = 5" -> "5" (one variable, one '=')
    s = re.sub(r"^\s*[A-Za-z]\s*=(?!=)\s*", "", s) if s.count("=") == 1 else s
    s = s.strip()
    if _THOUSANDS_RE.fullmatch(s):
        s = s.replace(",", "")
    # whitespace: keep one space only between two letters
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"(?<![A-Za-z]) | (?![A-Za-z])", "", s)
    s = s.rstrip(".").strip()
    # "+5" is 5; ".5" is 0.5 (numeric parsing copes, this is for string equality)
    if re.fullmatch(r"\+\d.*", s):
        s = s[1:]
    return s


_NUM_RE = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_FRAC_RE = re.compile(r"([-+]?)\\frac\{([^{}]+)\}\{([^{}]+)\}")


def parse_number(s: str) -> tuple[float, bool] | None:
    """``(value, is_percent)`` for a normalised plain number, else None.

    Accepts ints, decimals, scientific notation, ``a/b`` and ``\\frac{a}{b}``
    (with numeric ``a`` and ``b``, an optional sign in front or on ``a``),
    and a trailing ``%``.
    """
    s = s.strip()
    pct = s.endswith("%")
    if pct:
        s = s[:-1].strip()
    val = _plain_value(s)
    if val is None or math.isnan(val):
        return None
    return val, pct


def _plain_value(s: str) -> float | None:
    if _NUM_RE.fullmatch(s):
        return float(s)
    m = re.fullmatch(r"([-+]?)\(?([^()]+)\)?/\(?([^()]+)\)?", s)
    if m is None:
        m = _FRAC_RE.fullmatch(s)
    if m is None:
        return None
    sign, a, b = m.group(1), m.group(2).strip(), m.group(3).strip()
    if not (_NUM_RE.fullmatch(a) and _NUM_RE.fullmatch(b)):
        return None
    den = float(b)
    if den == 0:
        return None
    val = float(a) / den
    return -val if sign == "-" else val


def number_candidates(s: str) -> list[float] | None:
    """Values a normalised answer may stand for: ``50%`` -> [50, 0.5]."""
    parsed = parse_number(s)
    if parsed is None:
        return None
    val, pct = parsed
    return [val, val / 100.0] if pct else [val]
