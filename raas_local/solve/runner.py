"""The batch loop: prompt, generate, extract, score, record, repeat.

The model is reached only through ``generate_fn(prompt) -> GenerationResult``,
which the caller supplies (the CLI wires it to ``Engine.generate``), or
through ``generate_many(items) -> (key, GenerationResult) as each finishes``
(``solve --parallel N``: raas_local/batch.py's continuous batching), so this
loop knows nothing about llama.cpp. A generate_fn is the generate_many that
runs one prompt at a time (``one_at_a_time``): the loop is the same.

Decisions:

* Problems whose id is in ``writer.done_ids`` are skipped (resume).
* Each record is written the moment its problem is scored; nothing is kept
  for later.
* Records are written in finishing order (problem order one at a time).
* Ctrl-C (KeyboardInterrupt) during a problem abandons that problem (and the
  others in flight: none is recorded, so a rerun does them again) and
  :func:`solve` returns with ``interrupted=True``; the CLI then exits 130 with a one-line message.
  Any other exception from ``generate_fn`` propagates: it is the engine's
  error to report, and every finished problem is already on disk.
* The prompt template is filled with ``str.replace("{problem}", ...)``, not
  ``str.format``, so templates may contain literal braces (``\\boxed{}``).
* The progress bar goes to stderr and shows live accuracy over every scored
  problem of this set, resumed ones included ("acc 3/5 60%"), and the
  aggregate decode rate of this run's finished problems ("42.0 tok/s").
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Iterator, Sequence

from raas_local.solve.answer import extract_answer
from raas_local.solve.equivalence import check_equivalence
from raas_local.solve.problems import Problem
from raas_local.solve.results import ResultWriter
from raas_local.thinking import DEFAULT_THINK_TAGS

__all__ = [
    "DEFAULT_PROMPT_TEMPLATE",
    "GenerationResult",
    "SolveOutcome",
    "render_prompt",
    "score",
    "engine_generate_fn",
    "engine_generate_many",
    "one_at_a_time",
    "prompting",
    "progress_bar",
    "solve_one",
    "solve",
]

DEFAULT_PROMPT_TEMPLATE = (
    "Solve the following math problem. Reason step by step, then give the "
    "final answer on its own line as \\boxed{answer}.\n\n"
    "Problem: {problem}"
)


@dataclass
class GenerationResult:
    """What one generation returns to the loop."""

    text: str
    generated_tokens: int = 0
    peak_kv_cells: int | None = None
    evictions: int = 0
    seconds: float = 0.0
    # more fields for the record (e.g. prompt_tokens, finish_reason); they never
    # replace the record's own keys
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SolveOutcome:
    """The result of :func:`solve`.

    ``records`` are this problem set's records in problem order (resumed ones
    included, problems not reached left out), ready for ``compute_metrics``.
    """

    records: list[dict] = field(default_factory=list)
    new: int = 0  # problems solved in this call
    skipped: int = 0  # problems already in the results file
    remaining: int = 0  # problems with no record yet (after an interrupt)
    interrupted: bool = False


def render_prompt(template: str, problem: str) -> str:
    """Put ``problem`` into ``template`` at ``{problem}`` (or after it if absent)."""
    if "{problem}" in template:
        return template.replace("{problem}", problem)
    return f"{template.rstrip()}\n\n{problem}"


def score(
    problem: Problem,
    gen: GenerationResult,
    *,
    timeout: float = 5.0,
    think_tags: tuple[str, str] = DEFAULT_THINK_TAGS,
) -> dict[str, Any]:
    """The result record for one generation."""
    extracted = extract_answer(gen.text, think_tags)
    verdict = check_equivalence(extracted, problem.gold, timeout)
    record = {
        "id": problem.id,
        "gold": problem.gold,
        "pred_text": gen.text,
        "extracted": extracted,
        "correct": verdict.correct,
        "timed_out": verdict.timed_out,
        "generated_tokens": gen.generated_tokens,
        "peak_kv_cells": gen.peak_kv_cells,
        "evictions": gen.evictions,
        "seconds": round(float(gen.seconds), 4),
    }
    for key, value in gen.extra.items():
        record.setdefault(key, value)
    return record


def prompting(eng) -> tuple[str, tuple[str, str]]:
    """The prompt template and think tags solve uses with ``eng``'s model (its registry entry's, else the defaults)."""
    template = eng.spec.prompt_template if eng.spec is not None else DEFAULT_PROMPT_TEMPLATE
    return template, eng.think_tags or DEFAULT_THINK_TAGS


def result_of(done) -> GenerationResult:
    """The GenerationResult of an engine Completion."""
    extra: dict[str, Any] = {"finish_reason": done.finish_reason}
    stats = done.stats
    if stats is None:
        return GenerationResult(text=done.text, extra=extra)
    extra.update(prompt_tokens=stats.prompt_tokens, prefill_s=round(stats.prefill_s, 4),
                 decode_s=round(stats.decode_s, 4))
    return GenerationResult(
        text=done.text,
        generated_tokens=stats.generated_tokens,
        peak_kv_cells=stats.peak_kv_cells,
        evictions=stats.evictions,
        seconds=stats.prefill_s + stats.decode_s,
        extra=extra,
    )


def engine_generate_fn(eng, sampling) -> Callable[[str], GenerationResult]:
    """A generate_fn for :func:`solve` on an Engine with a Sampling: each prompt is a fresh conversation."""
    from raas_local.engine import collect

    def generate(prompt: str) -> GenerationResult:
        eng.reset()  # a problem's answer must not depend on the problems before it
        return result_of(collect(eng.generate(prompt, sampling)))

    return generate


GenerateMany = Callable[[Iterable[tuple[Any, str]]], Iterator[tuple[Any, GenerationResult]]]


def engine_generate_many(eng, sampling) -> GenerateMany:
    """A generate_many for :func:`solve`: ``eng.n_seq`` prompts at a time, each a fresh conversation
    in its own sequence with its own sampler seeded as one at a time (raas_local/batch.py)."""
    from raas_local.batch import generate_batch

    def many(items):
        for key, done in generate_batch(eng, ((k, prompt, sampling) for k, prompt in items)):
            yield key, result_of(done)

    return many


def one_at_a_time(generate_fn: Callable[[str], GenerationResult]) -> GenerateMany:
    """The generate_many of a generate_fn: each prompt in turn, timed by the wall clock if the
    generate_fn did not time it."""

    def many(items):
        for key, prompt in items:
            t0 = time.perf_counter()
            gen = generate_fn(prompt)
            if not gen.seconds:
                gen = replace(gen, seconds=time.perf_counter() - t0)
            yield key, gen

    return many


def progress_bar(console: Any = None):
    """The rich progress bar of a solve run on stderr, with live accuracy (fields ``correct``, ``scored``)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Aggregate decode rate of this run's finished problems: ``42.0 tok/s``."""

        def render(self, task) -> Text:
            tokens, elapsed = task.fields.get("tokens", 0), task.elapsed or 0.0
            return Text(f"{tokens / elapsed:.1f} tok/s" if tokens and elapsed > 0 else "-- tok/s", style="cyan")

    class AccuracyColumn(ProgressColumn):
        """Live accuracy over the scored problems: ``acc 3/5 60%``."""

        def render(self, task) -> Text:
            right, scored = task.fields.get("correct", 0), task.fields.get("scored", 0)
            pct = f"{100 * right / scored:.0f}%" if scored else "--"
            return Text(f"acc {right}/{scored} {pct}", style="green")

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        AccuracyColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
        transient=False,
    )


def solve_one(
    problem: Problem,
    generate_fn: Callable[[str], GenerationResult],
    *,
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
    timeout: float = 5.0,
    think_tags: tuple[str, str] = DEFAULT_THINK_TAGS,
) -> dict[str, Any]:
    """One problem: prompt, generate, score; its record (not written)."""
    ((_, gen),) = one_at_a_time(generate_fn)([(problem.id, render_prompt(prompt_template, problem.problem))])
    return score(problem, gen, timeout=timeout, think_tags=think_tags)


def solve(
    problems: Sequence[Problem],
    writer: ResultWriter,
    generate_fn: Callable[[str], GenerationResult] | None,
    *,
    generate_many: GenerateMany | None = None,
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
    progress: bool = True,
    timeout: float = 5.0,
    think_tags: tuple[str, str] = DEFAULT_THINK_TAGS,
    description: str = "solve",
    console: Any = None,
) -> SolveOutcome:
    """Solve ``problems`` not yet in ``writer``, recording each as it finishes; ``generate_many``
    (several at once) replaces ``generate_fn`` when given."""
    done = {str(r["id"]): r for r in writer.records}
    outcome = SolveOutcome()
    right = sum(1 for p in problems if p.id in done and done[p.id].get("correct") is True)
    scored = sum(1 for p in problems if p.id in done)
    outcome.skipped = scored

    bar = progress_bar(console) if progress else None
    task = None
    if bar is not None:
        bar.start()
        task = bar.add_task(description, total=len(problems), completed=scored,
                            correct=right, scored=scored)
    todo = {p.id: p for p in problems if p.id not in done}
    many = generate_many or one_at_a_time(generate_fn)
    results = many((pid, render_prompt(prompt_template, p.problem)) for pid, p in todo.items())
    tokens = 0
    try:
        for pid, gen in results:
            record = score(todo[pid], gen, timeout=timeout, think_tags=think_tags)
            writer.write(record)
            outcome.new += 1
            scored += 1
            right += record["correct"] is True
            tokens += gen.generated_tokens
            if bar is not None:
                bar.update(task, advance=1, correct=right, scored=scored, tokens=tokens)
    except KeyboardInterrupt:
        # The problems in flight are simply not recorded.  (Should Ctrl-C land
        # inside write(), the line is either complete once the file is
        # closed or torn and cut off when it is reopened.)
        outcome.interrupted = True
    finally:
        results.close()  # the engine frees its sequences
        if bar is not None:
            bar.stop()
    # the writer's records are what is on disk: a Ctrl-C between its write and the lines above
    # must not leave a written record out of the count
    written = {str(r["id"]): r for r in writer.records}
    outcome.records = [written[p.id] for p in problems if p.id in written]
    outcome.remaining = len(problems) - len(outcome.records)
    return outcome
