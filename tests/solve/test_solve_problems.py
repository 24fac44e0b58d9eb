"""Reading problem files, and the shipped sample set."""

from __future__ import annotations

import json

import pytest

from raas_local.errors import InputError
from raas_local.solve import sample_path
from raas_local.solve.equivalence import check_equivalence
from raas_local.solve.latex_sympy import to_sympy_syntax
from raas_local.solve.normalize import normalize, number_candidates
from raas_local.solve.problems import load_problems, parse_problem_lines


def _write(tmp_path, lines):
    p = tmp_path / "p.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_bad_lines_are_reported_with_line_numbers_and_skipped(tmp_path):
    lines = [
        json.dumps({"id": "a", "problem": "1+1?", "answer": 2}),  # 1 ok
        "{not json",  # 2
        "",  # 3 blank: ignored, no error
        json.dumps([1, 2]),  # 4 not an object
        json.dumps({"id": "b", "answer": 3}),  # 5 no problem
        json.dumps({"id": "c", "problem": "x?"}),  # 6 no answer
        json.dumps({"id": "d", "problem": "y?", "solution": "no marker here"}),  # 7
        json.dumps({"id": "a", "problem": "dup", "answer": 1}),  # 8 duplicate id
        json.dumps({"id": True, "problem": "z?", "answer": 1}),  # 9 bad id type
        json.dumps({"question": "2+2?", "answer": "4"}),  # 10 ok, id = line number
    ]
    problems, errors = load_problems(_write(tmp_path, lines))
    assert [p.id for p in problems] == ["a", "10"]
    assert [p.line for p in problems] == [1, 10]
    assert len(errors) == 7
    for lineno, err in zip([2, 4, 5, 6, 7, 8, 9], errors):
        assert f"p.jsonl:{lineno}:" in err
        assert "\n" not in err and err.endswith("skipped")
    assert "invalid JSON" in errors[0]
    assert "not a JSON object" in errors[1]
    assert "'problem'" in errors[2]
    assert "'answer' or 'solution'" in errors[3]
    assert "\\boxed" in errors[4]
    assert "duplicate id 'a' (first on line 1)" in errors[5]


def test_gold_from_gsm8k_and_math_solutions():
    lines = [
        json.dumps({"question": "q", "answer": "5 + 7 = <<5+7=12>>12\n#### 12"}),
        json.dumps({"problem": "p", "solution": r"so $\boxed{\frac{2}{3}}$."}),
        json.dumps({"problem": "p", "answer": r"\frac{1}{3}"}),  # plain value
        json.dumps({"problem": "p", "answer": 2.5}),
        json.dumps({"problem": "p", "answer": "  7 "}),
        json.dumps({"problem": "p", "answer": "8", "solution": r"\boxed{9}"}),  # answer wins
        json.dumps({"id": 7, "problem": "p", "answer": 1}),
    ]
    problems, errors = parse_problem_lines(lines)
    assert errors == []
    assert [p.gold for p in problems] == ["12", r"\frac{2}{3}", r"\frac{1}{3}", "2.5", "7", "8", "1"]
    assert problems[-1].id == "7"  # integer ids become strings


def test_bom_and_missing_file(tmp_path):
    p = tmp_path / "bom.jsonl"
    p.write_bytes("\ufeff".encode() + json.dumps({"problem": "p", "answer": 1}).encode())
    problems, errors = load_problems(p)
    assert len(problems) == 1 and errors == []
    with pytest.raises(InputError):
        load_problems(tmp_path / "nope.jsonl")


def test_sample_set_ships_and_is_valid():
    path = sample_path()
    assert path.name == "sample.jsonl" and path.exists()
    problems, errors = load_problems(path)
    assert errors == []
    assert len(problems) >= 30
    ids = [p.id for p in problems]
    assert len(set(ids)) == len(ids)
    kinds = {p.id.split("-")[0] for p in problems}
    assert kinds == {"gsm", "math"}
    for p in problems:
        g = normalize(p.gold)
        # every gold is a plain number or something our sympy converter reads
        assert number_candidates(g) is not None or to_sympy_syntax(g) is not None, p
        assert check_equivalence(p.gold, p.gold).correct


def test_sample_golds_spot_checks():
    """A few golds recomputed here independently of the file's own working."""
    gold = {p.id: p.gold for p in load_problems(sample_path())[0]}
    assert gold["gsm-05"] == str(8 * 24 - 150)
    assert gold["gsm-17"] == str(1250 - 475 - 380)
    assert float(gold["gsm-18"]) == 54 / 4 + 2
    assert check_equivalence(gold["math-01"], "5/6").correct
    assert check_equivalence(gold["math-08"], "1.5").correct
    assert gold["math-12"] == str(-4 + 3 * (-5))
