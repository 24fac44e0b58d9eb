"""Pull the final answer out of a model's output or a reference solution.

Order of preference (the first that finds something wins):

1. the last complete ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces
   allowed, e.g. ``\\boxed{\\frac{1}{2}}``; also the brace-less MATH form
   ``\\boxed 5``); empty boxes are skipped;
2. the last GSM8K marker ``#### N``;
3. the last "final answer is X" / "the answer is X" / "final answer: X"
   (case-insensitive);
4. the last number in the text (thousands commas dropped: ``1,234`` -> ``1234``).

Thinking: text inside the model's think block counts only when nothing
(non-whitespace) follows it.  If the closing tag is present and followed by
text, only that text is searched; if the block is unclosed (generation cut
off mid-thought) or nothing follows it, the whole text is searched.  A closing
tag without an opening tag counts as closed (some chat templates put the
opening tag in the prompt).

Extraction is purely syntactic; normalisation (units, ``$``, ``\\text{}``, ...)
is the job of :mod:`raas_local.solve.equivalence`.
"""

from __future__ import annotations

import re

from raas_local.thinking import DEFAULT_THINK_TAGS, answer_region

__all__ = ["extract_answer", "gold_answer", "answer_region"]

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\b")
_GSM8K_RE = re.compile(r"####[ \t]*([^\n]*)")
_FINAL_RE = re.compile(
    r"(?:final\s+answer|the\s+answer)\s*(?:is\s*[:=]?|[:=])\s*",
    re.IGNORECASE,
)
# A number: optional sign (not glued to a preceding word or digit, so "x-5"
# and "3-5" give "5"), thousands groups or plain digits, optional decimals,
# or a bare ".5"; an optional "/b" keeps simple fractions like 3/4 whole.
_NUMBER_RE = re.compile(
    r"(?<![\w.])(-)?"
    r"((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)"
    r"(?:/(\d+)(?!\d|\.\d))?"
)


def _match_brace(s: str, start: int) -> int | None:
    """Index just past the brace group opening at ``s[start] == '{'``, or None."""
    depth = 0
    i = start
    while i < len(s):
        c = s[i]
        if c == "\\":
            i += 2  # an escaped char (e.g. \{ or \}) never counts as a brace
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def _last_box(text: str) -> str | None:
    found: str | None = None
    for m in _BOX_RE.finditer(text):
        j = m.end()
        while j < len(text) and text[j] in " \t":
            j += 1
        if j < len(text) and text[j] == "{":
            end = _match_brace(text, j)
            if end is None:
                continue  # truncated box: keep an earlier complete one
            content = text[j + 1:end - 1].strip()
        elif j > m.end():
            # "\boxed 5": the brace-less form runs to whitespace or '$'
            content = re.match(r"[^\s$]*", text[j:]).group(0).strip()
        else:
            continue
        if content:
            found = content
    return found


def _last_gsm8k(text: str) -> str | None:
    found = None
    for m in _GSM8K_RE.finditer(text):
        val = m.group(1).strip()
        if val:
            found = val
    return found


def _clean_phrase_answer(rest: str) -> str | None:
    """Cut the answer after "final answer is" out of the rest of its line."""
    rest = rest.strip().lstrip("*").strip()  # markdown bold: **42**
    for opener, closer in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if rest.startswith(opener):
            end = rest.find(closer, len(opener))
            if end > 0:
                return rest[len(opener):end].strip() or None
    # Otherwise the answer ends at a sentence end: '.' not inside a number,
    # ';', a comma before a word (", which ..."; "1, 2" lists stay whole),
    # markdown bold closing, or a trailing clause.
    m = re.search(
        r"\.(?!\d)|;|,(?=\s*[A-Za-z])|\*\*|\s+(?:I hope|because|since|as)\b", rest
    )
    if m:
        rest = rest[:m.start()]
    rest = rest.strip().strip("*").strip()
    return rest or None


def _last_final_phrase(text: str) -> str | None:
    found = None
    for m in _FINAL_RE.finditer(text):
        line_end = text.find("\n", m.end())
        rest = text[m.end():] if line_end < 0 else text[m.end():line_end]
        val = _clean_phrase_answer(rest)
        if val:
            found = val
    return found


def _last_number(text: str) -> str | None:
    last = None
    for last in _NUMBER_RE.finditer(text):
        pass
    if last is None:
        return None
    sign, num, den = last.group(1) or "", last.group(2).replace(",", ""), last.group(3)
    return f"{sign}{num}/{den}" if den else f"{sign}{num}"


def extract_answer(
    text: str | None, think_tags: tuple[str, str] = DEFAULT_THINK_TAGS
) -> str | None:
    """The final answer in ``text`` as a string, or None if there is none."""
    if not text:
        return None
    region = answer_region(text, think_tags)
    for finder in (_last_box, _last_gsm8k, _last_final_phrase, _last_number):
        val = finder(region)
        if val:
            return val
    return None


def gold_answer(solution: str | None) -> str | None:
    """The reference answer in a GSM8K (``#### N``) or MATH (``\\boxed{}``) solution.

    Stricter than :func:`extract_answer`: a gold answer is never guessed from
    the last number or a phrase, so a solution with neither marker gives None.
    """
    if not solution:
        return None
    return _last_box(solution) or _last_gsm8k(solution)
