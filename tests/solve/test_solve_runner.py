"""The batch loop, driven by a real deterministic generate_fn (a lookup table).

The lead adds the end-to-end run on the real model; these tests exercise the
loop itself: resume, scoring, recording, progress and Ctrl-C.
"""

from __future__ import annotations

import io
import json

from rich.console import Console

from raas_local.solve.problems import Problem
from raas_local.solve.results import ResultWriter, compute_metrics, read_records
from raas_local.solve.runner import (
    DEFAULT_PROMPT_TEMPLATE,
    GenerationResult,
    render_prompt,
    solve,
)

PROBLEMS = [
    Problem("p1", "What is 2+3?", "5", 1),
    Problem("p2", "What is 10/4?", "2.5", 2),
    Problem("p3", "Simplify sqrt(8).", r"2\sqrt{2}", 3),
    Problem("p4", "What is 7*6?", "42", 4),
    Problem("p5", "What is 1-9?", "-8", 5),
]

# What our "model" says to each problem: right, right, right (symbolically),
# wrong, and no answer at all.
ANSWERS = {
    "What is 2+3?": "<think>2+3 is 5</think>The answer is \\boxed{5}.",
    "What is 10/4?": "10/4 = \\frac{5}{2}, so \\boxed{\\frac{5}{2}}",
    "Simplify sqrt(8).": "\\boxed{\\sqrt{8}}",
    "What is 7*6?": "#### 41",
    "What is 1-9?": "I am not sure.",
}


class LookupModel:
    """A deterministic generate_fn: answers from a table, counts its calls."""

    def __init__(self, interrupt_on: int | None = None):
        self.calls: list[str] = []
        self.interrupt_on = interrupt_on

    def __call__(self, prompt: str) -> GenerationResult:
        self.calls.append(prompt)
        if self.interrupt_on is not None and len(self.calls) == self.interrupt_on:
            raise KeyboardInterrupt
        problem = prompt.split("Problem: ", 1)[1]
        text = ANSWERS[problem]
        return GenerationResult(text=text, generated_tokens=len(text), peak_kv_cells=64,
                                evictions=1, seconds=0.5)


def test_solve_records_every_problem(tmp_path):
    out = tmp_path / "out.jsonl"
    model = LookupModel()
    with ResultWriter(out) as w:
        outcome = solve(PROBLEMS, w, model, progress=False)
    assert not outcome.interrupted and outcome.new == 5 and outcome.remaining == 0
    recs = read_records(out)
    assert [r["id"] for r in recs] == ["p1", "p2", "p3", "p4", "p5"]
    assert [r["correct"] for r in recs] == [True, True, True, False, False]
    assert [r["extracted"] for r in recs] == ["5", r"\frac{5}{2}", r"\sqrt{8}", "41", None]
    assert recs[0]["pred_text"] == ANSWERS["What is 2+3?"]
    assert all(r["timed_out"] is False for r in recs)
    assert recs[1]["generated_tokens"] == len(ANSWERS["What is 10/4?"])
    assert recs[1]["seconds"] == 0.5 and recs[1]["peak_kv_cells"] == 64
    m = compute_metrics(outcome.records, "raas", 256, "lookup")
    assert m["accuracy"] == 0.6 and m["answered"] == 4 and m["n"] == 5


def test_prompt_template():
    assert "{problem}" in DEFAULT_PROMPT_TEMPLATE and "\\boxed" in DEFAULT_PROMPT_TEMPLATE
    # literal braces in a template are fine (no str.format)
    assert render_prompt(r"Q: {problem} Put it in \boxed{}.", "1+1") == r"Q: 1+1 Put it in \boxed{}."
    assert render_prompt("Solve:", "1+1") == "Solve:\n\n1+1"
    model = LookupModel()
    solve(PROBLEMS[:1], _NullWriter(), model, prompt_template="Problem: {problem}", progress=False)
    assert model.calls == ["Problem: What is 2+3?"]


class _NullWriter(ResultWriter):
    """A writer that keeps records in memory only (for prompt checks)."""

    def __init__(self):
        self.records, self.done_ids = [], set()

    def write(self, record):
        self.records.append(record)
        self.done_ids.add(record["id"])

    def close(self):
        pass


def test_resume_skips_done_ids(tmp_path):
    out = tmp_path / "out.jsonl"
    with ResultWriter(out) as w:
        solve(PROBLEMS[:2], w, LookupModel(), progress=False)
    model = LookupModel()
    with ResultWriter(out) as w:
        outcome = solve(PROBLEMS, w, model, progress=False)
    assert len(model.calls) == 3  # p1, p2 were not generated again
    assert outcome.skipped == 2 and outcome.new == 3
    assert [r["id"] for r in outcome.records] == ["p1", "p2", "p3", "p4", "p5"]
    assert [r["id"] for r in read_records(out)] == ["p1", "p2", "p3", "p4", "p5"]


def test_keyboard_interrupt_then_rerun_finishes_each_id_once(tmp_path):
    out = tmp_path / "out.jsonl"
    model = LookupModel(interrupt_on=3)  # Ctrl-C while generating p3
    with ResultWriter(out) as w:
        outcome = solve(PROBLEMS, w, model, progress=False)
    assert outcome.interrupted
    assert outcome.new == 2 and outcome.remaining == 3
    text = out.read_text(encoding="utf-8")
    assert text.endswith("\n")
    assert [json.loads(line)["id"] for line in text.splitlines()] == ["p1", "p2"]

    model2 = LookupModel()
    with ResultWriter(out) as w:
        outcome2 = solve(PROBLEMS, w, model2, progress=False)
    assert not outcome2.interrupted and outcome2.new == 3
    ids = [r["id"] for r in read_records(out)]
    assert sorted(ids) == ["p1", "p2", "p3", "p4", "p5"] and len(ids) == len(set(ids))
    assert len(model2.calls) == 3


def test_ctrl_c_right_after_a_write_still_counts_that_record(tmp_path):
    """A Ctrl-C landing after the writer returned but before the runner's own bookkeeping must not
    drop the written record from the outcome (the interrupt line said 1/16 done with 2 on disk)."""

    class CtrlCAfterSecond(ResultWriter):
        def write(self, record):
            super().write(record)
            if len(self.records) == 2:
                raise KeyboardInterrupt

    out = tmp_path / "out.jsonl"
    with CtrlCAfterSecond(out) as w:
        outcome = solve(PROBLEMS, w, LookupModel(), progress=False)
    assert outcome.interrupted
    assert [r["id"] for r in outcome.records] == [r["id"] for r in read_records(out)] == ["p1", "p2"]
    assert outcome.remaining == 3


def test_other_errors_propagate_after_saving_finished_work(tmp_path):
    out = tmp_path / "out.jsonl"

    def broken(prompt):
        if "7*6" in prompt:
            raise RuntimeError("engine failed")
        return LookupModel()(prompt)

    with ResultWriter(out) as w:
        try:
            solve(PROBLEMS, w, broken, progress=False)
        except RuntimeError:
            pass
        else:
            raise AssertionError("the error should propagate")
    assert [r["id"] for r in read_records(out)] == ["p1", "p2", "p3"]


def test_progress_bar_shows_live_accuracy(tmp_path):
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=120)
    with ResultWriter(tmp_path / "out.jsonl") as w:
        solve(PROBLEMS, w, LookupModel(), progress=True, console=console)
    assert "acc 3/5 60%" in buf.getvalue()


def test_generate_many_writes_in_finishing_order_and_reports_in_problem_order(tmp_path):
    """solve --parallel's shape: several prompts in flight, finishing out of order; a Ctrl-C loses only
    those in flight, and the rerun does each of them once."""
    model = LookupModel()

    def many(items, stop_after=None):
        pending = list(items)
        assert [k for k, _ in pending] == ["p1", "p2", "p3", "p4", "p5"]  # each asked for once
        for n, (key, prompt) in enumerate(reversed(pending)):  # the last one finishes first
            if n == stop_after:
                raise KeyboardInterrupt
            yield key, model(prompt)

    out = tmp_path / "out.jsonl"
    with ResultWriter(out) as w:
        outcome = solve(PROBLEMS, w, None, generate_many=lambda items: many(items, stop_after=2), progress=False)
    assert outcome.interrupted and outcome.new == 2
    assert [r["id"] for r in read_records(out)] == ["p5", "p4"]
    assert [r["id"] for r in outcome.records] == ["p4", "p5"]  # problem order

    def rest(items):
        items = list(items)
        assert [k for k, _ in items] == ["p1", "p2", "p3"]
        return ((k, model(prompt)) for k, prompt in reversed(items))

    buf = io.StringIO()
    with ResultWriter(out) as w:
        outcome = solve(PROBLEMS, w, None, generate_many=rest, progress=True,
                        console=Console(file=buf, force_terminal=False, width=160))
    assert outcome.new == 3 and outcome.skipped == 2
    assert [r["id"] for r in read_records(out)] == ["p5", "p4", "p3", "p2", "p1"]
    assert [r["id"] for r in outcome.records] == ["p1", "p2", "p3", "p4", "p5"]
    assert "tok/s" in buf.getvalue()


def test_sweep_table():
    from raas_local.solve.output import sweep_table

    rows = [
        {"policy": "raas", "budget": 256, "accuracy": 0.5, "n": 4, "mean_generated_tokens": 100.0,
         "peak_kv_cells": 256, "tok_per_s": 40.0, "model": "m"},
        {"policy": "dense", "budget": None, "accuracy": 0.75, "n": 4,
         "mean_generated_tokens": 120.25, "peak_kv_cells": 900, "tok_per_s": None},
    ]
    md, js = sweep_table(rows)
    lines = md.strip().splitlines()
    assert lines[0] == ("| policy | budget | accuracy | n | mean gen tokens | peak KV cells "
                        "| tok/s |")
    assert lines[2] == "| raas | 256 | 50.0% | 4 | 100.0 | 256 | 40.0 |"
    assert lines[3] == "| dense | n/a | 75.0% | 4 | 120.2 | 900 | n/a |"
    assert js[0] == {"policy": "raas", "budget": 256, "accuracy": 0.5, "n": 4,
                     "mean_generated_tokens": 100.0, "peak_kv_cells": 256, "tok_per_s": 40.0}
    assert "model" not in js[0]
