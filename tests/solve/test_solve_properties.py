"""Property checks: extraction and normalisation never crash; numbers round-trip.

Only the string and numeric paths are exercised here (no sympy worker), so
these stay fast.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from raas_local.solve.answer import extract_answer
from raas_local.solve.equivalence import check_equivalence
from raas_local.solve.normalize import normalize

_TEXT = st.text(alphabet=st.sampled_from(list("0123456789 -.,/$%\\{}^#boxedfracthinkANSWER<>:\n")),
                max_size=60)


@settings(max_examples=200, deadline=None)
@given(_TEXT)
def test_extract_and_normalize_never_raise(text):
    ans = extract_answer(text)
    assert ans is None or (isinstance(ans, str) and ans)
    assert isinstance(normalize(text), str)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=-10**12, max_value=10**12))
def test_integers_round_trip(n):
    assert extract_answer(f"so we get \\boxed{{{n}}}.") == str(n)
    assert extract_answer(f"Total: {n:,} apples") == str(n)
    v = check_equivalence(f"{n:,}", str(n))
    assert v.correct and v.method in ("string", "numeric")
    assert not check_equivalence(str(n + 1), str(n)).correct


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 999), st.integers(1, 999))
def test_fractions_match_their_decimals(a, b):
    assert check_equivalence(f"\\frac{{{a}}}{{{b}}}", repr(a / b)).correct
    assert check_equivalence(f"{a}/{b}", f"\\dfrac{{{a}}}{{{b}}}").correct
