"""Answer extraction: boxes, GSM8K markers, phrases, last numbers, thinking."""

from __future__ import annotations

import pytest

import raas_local.solve as solve
from raas_local.solve.answer import answer_region, extract_answer, gold_answer

EXTRACT_CASES = [
    # boxes, nested braces
    (r"So the answer is \boxed{42}.", "42"),
    (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
    (r"Thus $x = \boxed{\dfrac{\sqrt{3}}{2}}$.", r"\dfrac{\sqrt{3}}{2}"),
    (r"\boxed{\frac{a^{2}}{b_{1}}}", r"\frac{a^{2}}{b_{1}}"),
    (r"We get \fbox{7} in the end.", "7"),
    (r"\boxed{ -3 }", "-3"),
    (r"\boxed 5$ is it", "5"),
    (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),
    # multiple boxes: last wins; a truncated or empty box does not
    (r"First \boxed{1}, then \boxed{2}, finally \boxed{3}.", "3"),
    (r"\boxed{12} but wait, \boxed{13", "12"),
    (r"\boxed{4} and \boxed{}", "4"),
    # the box beats other markers and later numbers
    (r"\boxed{10} #### 11", "10"),
    (r"The final answer is \boxed{9}. Check: 3*3 = 9, 2+2 = 4", "9"),
    # GSM8K marker
    ("She pays 3 * 4 = <<3*4=12>>12 dollars.\n#### 12", "12"),
    ("#### 1,234", "1,234"),
    ("#### 7\nsome trailer 99", "7"),
    ("#### -5", "-5"),
    # "final answer is" / "the answer is"
    ("The final answer is 17.", "17"),
    ("Final Answer: The final answer is $\\frac{3}{4}$. I hope it is correct.", r"\frac{3}{4}"),
    ("the answer is: 3.5 meters", "3.5 meters"),
    ("So the answer is **42**.", "42"),
    ("THE ANSWER IS 8, which is even.", "8"),
    ("Final answer: x = 4", "x = 4"),
    ("The answer is 1, 2", "1, 2"),
    # last number
    ("After all that we get 12 then 15", "15"),
    ("It costs $1,000 in total.", "1000"),
    ("The change is -7 degrees", "-7"),
    ("from 3-5 we get", "5"),
    ("a ratio of 3/4.", "3/4"),
    ("about 0.25 of it", "0.25"),
    ("roughly .5 left", ".5"),
    ("We computed 2.5.", "2.5"),
    # nothing at all
    ("I don't know.", None),
    ("", None),
    (None, None),
    ("   \n ", None),
]


@pytest.mark.parametrize("text,expected", EXTRACT_CASES)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


THINK_CASES = [
    # text after the think block: only that text counts
    ("<think>maybe \\boxed{3}</think>The answer is \\boxed{4}.", "4"),
    ("<think>it is 99</think>\nSo we get 5 apples.", "5"),
    ("<think>\\boxed{3}</think> I think it is 7", "7"),
    # answer only inside the block, nothing after it: the whole text counts
    ("<think>so it is \\boxed{3}</think>", "3"),
    ("<think>so it is \\boxed{3}</think>   \n", "3"),
    # unclosed block (cut off mid-thought): the whole text counts
    ("<think>first 2 then maybe \\boxed{8} hmm", "8"),
    # closing tag without opening tag (template put <think> in the prompt)
    ("hmm 6 ... </think> The answer is 9.", "9"),
    # text after the block without any answer: None, thinking is not used
    ("<think>\\boxed{3}</think> I am not sure.", None),
]


@pytest.mark.parametrize("text,expected", THINK_CASES)
def test_extract_with_thinking(text, expected):
    assert extract_answer(text) == expected


def test_custom_think_tags():
    text = "<reasoning>\\boxed{1}</reasoning>Final answer: \\boxed{2}"
    assert extract_answer(text, think_tags=("<reasoning>", "</reasoning>")) == "2"
    assert answer_region("<r>a</r> b", ("<r>", "</r>")) == " b"


@pytest.mark.parametrize(
    "solution,expected",
    [
        ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n48+24 = <<48+24=72>>72\n#### 72", "72"),
        ("#### 1,000", "1,000"),
        (r"So $\frac{1}{2}+\frac{1}{3} = \boxed{\frac{5}{6}}$.", r"\frac{5}{6}"),
        (r"$x=\boxed{-2}$ or ... final $\boxed{3}$", "3"),
        ("The answer is 5.", None),  # a gold is never guessed from a phrase
        ("We get 12 apples.", None),
        ("", None),
    ],
)
def test_gold_answer(solution, expected):
    assert gold_answer(solution) == expected


def test_package_exports():
    assert solve.extract_answer(r"\boxed{2}") == "2"
    assert solve.is_equivalent("2", "2.0")
