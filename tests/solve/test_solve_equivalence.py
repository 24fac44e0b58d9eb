"""Normalisation, numeric and symbolic equivalence, and the timeout path."""

from __future__ import annotations

import pytest

from raas_local.solve import equivalence
from raas_local.solve.equivalence import check_equivalence, is_equivalent
from raas_local.solve.latex_sympy import to_sympy_syntax
from raas_local.solve.normalize import normalize, number_candidates
from raas_local.solve.sympy_pool import default_pool

NORMALIZE_CASES = [
    ("$42$", "42"),
    (r"\boxed{7}", "7"),
    (r"\left( 1, 2 \right)", "(1,2)"),
    (r"\dfrac{1}{2}", r"\frac{1}{2}"),
    (r"\tfrac12", r"\frac{1}{2}"),
    (r"30^\circ", "30"),
    (r"30^{\circ}", "30"),
    (r"-5^\circ C", "-5"),
    ("-5°F", "-5"),
    (r"50\%", "50%"),
    ("50 percent", "50%"),
    (r"\$18.50", "18.50"),
    ("18 dollars", "18"),
    (r"5\text{ cm}", "5"),
    (r"\text{(B)}", "(B)"),
    ("12 square units", "12"),
    ("7 apples", "7"),
    ("1,000", "1000"),
    ("-12,345.5", "-12345.5"),
    ("1{,}000", "1000"),
    ("1,2", "1,2"),  # a list, not a thousands separator
    ("(1,000, 2)", "(1,000,2)"),  # inside a tuple commas stay
    ("x = 5", "5"),
    ("3.", "3"),
    (r"1\,000\!", "1000"),
    (r"2\pi r", r"2\pi r"),  # the space between letters survives
    ("+5", "5"),
]


@pytest.mark.parametrize("raw,expected", NORMALIZE_CASES)
def test_normalize(raw, expected):
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    "s,expected",
    [
        ("42", [42.0]),
        ("-3.5", [-3.5]),
        ("3/4", [0.75]),
        (r"\frac{1}{4}", [0.25]),
        (r"-\frac{1}{4}", [-0.25]),
        (r"\frac{-1}{4}", [-0.25]),
        ("50%", [50.0, 0.5]),
        ("1e3", [1000.0]),
        ("x+1", None),
        ("1/0", None),
        (r"\sqrt{2}", None),
    ],
)
def test_number_candidates(s, expected):
    assert number_candidates(s) == expected


EQUIVALENT = [
    # strings and numbers
    ("42", "42"),
    ("42.0", "42"),
    ("0.5", r"\frac{1}{2}"),
    (r"\dfrac{1}{2}", "1/2"),
    (r"\frac12", "0.5"),
    ("-0.25", r"-\frac{1}{4}"),
    ("1,000", "1000"),
    (r"\$1,000", "1000"),
    ("18 dollars", "18"),
    (r"5\text{ cm}", "5"),
    (r"90^\circ", "90"),
    ("50%", "50"),
    (r"50\%", "0.5"),
    ("0.5", "50%"),
    ("3.0000001", "3"),  # inside rel_tol 1e-6
    ("x = -5", "-5"),
    ("1, -2", "-2, 1"),  # bare lists are unordered
    ("[0, 1)", "[0,1)"),
    ("(1,2)", r"\left(1, 2\right)"),
    # symbolic (worker process)
    (r"\sqrt{8}", r"2\sqrt{2}"),
    ("x^2+2x+1", "(x+1)^2"),
    (r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}"),
    (r"2\pi r", r"2r\pi"),
    (r"\frac{x^2-1}{x-1}", "x+1"),
    ("x+y=1", "1=y+x"),
    (r"\sqrt{3}", "1.7320508"),  # a decimal against a constant, same tolerance
    ("2^{10}", "1024"),
    (r"\text{Monday}", "monday"),
    ("xy", "yx"),
    ("(0.5, 1), (2, 3)", r"(2,3), (\frac{1}{2}, 1)"),  # a bare list of tuples
]

NOT_EQUIVALENT = [
    ("42", "43"),
    ("0.333", r"\frac{1}{3}"),  # too far for rel_tol 1e-6
    ("3.001", "3"),
    ("-5", "5"),
    ("0.5", "50"),  # no % on either side: not a percentage
    ("(1,2)", "(2,1)"),  # tuples are ordered
    ("(1,2)", "[1,2]"),
    ("1, 2", "1, 2, 3"),
    (r"\sqrt{8}", "3"),
    ("x^2+1", "(x+1)^2"),
    ("x", "y"),
    (None, "1"),
    ("1", None),
    ("", "0"),
    (r"\begin{pmatrix}1\end{pmatrix}", "1"),  # outside our language: not equal
    ("(x+1", "x+1"),  # sympy cannot parse it: not equal, not a crash
    ("1000001", "1000000"),  # integers compare exactly, rel_tol aside
    ("2 x", "2"),  # "x" is no unit
]


@pytest.mark.parametrize("pred,gold", EQUIVALENT)
def test_equivalent(pred, gold):
    v = check_equivalence(pred, gold)
    assert v.correct and not v.timed_out, v


@pytest.mark.parametrize("pred,gold", NOT_EQUIVALENT)
def test_not_equivalent(pred, gold):
    v = check_equivalence(pred, gold)
    assert not v.correct and not v.timed_out, v


def test_numbers_never_need_sympy():
    assert check_equivalence("1,000", "1000.0").method in ("string", "numeric")
    assert check_equivalence("7", "8").method == "numeric"


def test_methods_are_reported():
    assert check_equivalence(r"\sqrt{8}", r"2\sqrt{2}").method == "symbolic"
    assert check_equivalence("1, 2", "2, 1").method == "list"


@pytest.mark.parametrize(
    "s,expected",
    [
        (r"\frac{1}{2}", "((1)/(2))"),
        (r"2\sqrt{2}", "2 sqrt(2)"),
        (r"\sqrt[3]{8}", "((8)**(1/(3)))"),
        ("x^{2}", "x**(2)"),
        ("xy", "x y"),
        (r"\pi r^2", "pi r**2"),
        (r"\{1\}", None),
        ("__import__('os')", None),  # never reaches eval
        ("a_1", None),
    ],
)
def test_to_sympy_syntax(s, expected):
    assert to_sympy_syntax(s) == expected


def test_timeout_is_counted_and_pool_recovers():
    # 9^(9^9) has ~370 million digits: evaluating it takes far longer than 0.5 s.
    is_equivalent("2", r"\sqrt{4}")  # make sure the worker is up: startup is not timed
    restarts = default_pool.restarts
    hung = default_pool._worker.proc
    v = check_equivalence("9^{9^{9}}", "1", timeout=0.5)
    assert v.timed_out and not v.correct and v.method == "timeout"
    # the call came back at the timeout, not when sympy was done: the worker still
    # computing then is dead now (a wall-clock bound stood for this on a busy machine)
    assert hung.poll() is not None
    assert default_pool.restarts == restarts + 1
    assert not default_pool.started
    # the pool is usable again: a fresh worker answers
    v2 = check_equivalence(r"\sqrt{8}", r"2\sqrt{2}", timeout=60)
    assert v2.correct and not v2.timed_out


def test_shutdown_then_reuse():
    assert is_equivalent(r"\sqrt{4}", "2")
    equivalence.shutdown()
    assert not default_pool.started
    assert is_equivalent(r"\sqrt{9}", "3")  # lazily restarted
    assert default_pool.started


def test_dead_worker_is_replaced():
    assert is_equivalent(r"\sqrt{4}", "2")
    default_pool._worker.proc.kill()  # killed from outside (OOM killer, a user)
    default_pool._worker.proc.wait()
    assert is_equivalent(r"\sqrt{9}", "3")
