"""Batch math solving: answer extraction, scoring, resumable results.

``raas_local.solve.extract_answer(text)`` and ``is_equivalent(pred, gold)``
are the two functions most callers need; :func:`solve` runs a whole problem
set through a caller-supplied ``generate_fn``.  Nothing here loads the native
library.
"""

from __future__ import annotations

from raas_local.solve.answer import answer_region, extract_answer, gold_answer
from raas_local.solve.data import sample_path
from raas_local.solve.equivalence import Verdict, check_equivalence, is_equivalent, shutdown
from raas_local.solve.normalize import normalize
from raas_local.solve.problems import Problem, load_problems, parse_problem_lines
from raas_local.solve.results import (
    ResultWriter,
    compute_metrics,
    read_records,
    write_metrics,
)
from raas_local.solve.runner import (
    DEFAULT_PROMPT_TEMPLATE,
    GenerationResult,
    SolveOutcome,
    render_prompt,
    score,
    solve,
)
from raas_local.solve.output import sweep_table

__all__ = [
    "DEFAULT_PROMPT_TEMPLATE",
    "GenerationResult",
    "Problem",
    "ResultWriter",
    "SolveOutcome",
    "Verdict",
    "answer_region",
    "check_equivalence",
    "compute_metrics",
    "extract_answer",
    "gold_answer",
    "is_equivalent",
    "load_problems",
    "normalize",
    "parse_problem_lines",
    "read_records",
    "render_prompt",
    "sample_path",
    "score",
    "shutdown",
    "solve",
    "sweep_table",
    "write_metrics",
]
