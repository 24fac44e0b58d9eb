"""What `raas-local solve` prints and writes besides the records: metrics, summary lines, the sweep table."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterable

from raas_local.solve.plan import Run, slug


def metrics(records: list[dict], run: Run, model_label: str, sampling) -> dict[str, Any]:
    from raas_local.solve.results import compute_metrics

    m = compute_metrics(records, run.policy.kind, run.policy.budget, model_label)
    m["truncated"] = sum(1 for r in records if r.get("finish_reason") == "length")
    m["evictions"] = sum(r.get("evictions") or 0 for r in records if isinstance(r.get("evictions"), int))
    m["max_tokens"] = sampling.max_tokens
    m["temperature"] = sampling.temperature
    m["seed"] = sampling.seed
    m["results"] = str(run.out)
    return m


def save_metrics(records: list[dict], run: Run, model_label: str, sampling) -> tuple[dict[str, Any], Path]:
    """The run's metrics over ``records``, written beside its OUT; the metrics and their path."""
    from raas_local.solve.plan import metrics_path_beside
    from raas_local.solve.results import write_metrics

    m = metrics(records, run, model_label, sampling)
    return m, write_metrics(metrics_path_beside(run.out), m)


def report_run(name: str, m: dict[str, Any], metrics_path: Path, run: Run, total: int, new: int, resumed: int) -> None:
    """A finished run's summary line and where its files are, on stdout."""
    print(summary_line(name, m, total, new, resumed))
    print(f"raas-local: results in {run.out}, metrics in {metrics_path}")
    sys.stdout.flush()


def summary_line(name: str, m: dict[str, Any], total: int, new: int, resumed: int) -> str:
    acc = "n/a" if m["accuracy"] is None else f"{100 * m['accuracy']:.1f}%"
    mean = "n/a" if m["mean_generated_tokens"] is None else f"{m['mean_generated_tokens']:.1f}"
    tps = "n/a" if m["tok_per_s"] is None else f"{m['tok_per_s']:.1f}"
    budget = "" if m["budget"] is None else f" budget {m['budget']}"
    return (
        f"raas-local: {name}: {m['n']}/{total} problems ({new} new, {resumed} resumed) | "
        f"accuracy {acc} ({m['correct']}/{m['n']}), answered {m['answered']}, truncated {m['truncated']}, "
        f"timeouts {m['timeouts']} | mean {mean} tokens, {tps} tok/s, peak KV {m['peak_kv_cells']} cells | "
        f"{m['policy']}{budget} | {m['model']}"
    )


_SWEEP_COLS = (
    ("policy", "policy"),
    ("budget", "budget"),
    ("accuracy", "accuracy"),
    ("n", "n"),
    ("mean_generated_tokens", "mean gen tokens"),
    ("peak_kv_cells", "peak KV cells"),
    ("tok_per_s", "tok/s"),
)


def _fmt(key: str, v: Any) -> str:
    if v is None:
        return "n/a"
    if key == "accuracy":
        return f"{100 * v:.1f}%"
    if isinstance(v, float):
        return f"{v:.1f}"
    return str(v)


def sweep_table(rows: Iterable[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """A markdown table and JSON rows for a policies x budgets sweep.

    Each row is a metrics dict (from ``compute_metrics``); only the sweep
    columns are kept, in the order given.  Missing values show as ``n/a``.
    """
    json_rows = [{k: r.get(k) for k, _ in _SWEEP_COLS} for r in rows]
    header = "| " + " | ".join(title for _, title in _SWEEP_COLS) + " |"
    align = "|" + "|".join("---" if k == "policy" else "---:" for k, _ in _SWEEP_COLS) + "|"
    lines = [header, align]
    for r in json_rows:
        lines.append("| " + " | ".join(_fmt(k, r[k]) for k, _ in _SWEEP_COLS) + " |")
    return "\n".join(lines) + "\n", json_rows


def write_sweep(folder: Path, problems_path: Path, model_label: str, rows: list[dict], sampling) -> tuple[Path, Path, str]:
    """``<stem>.<model>.sweep.json`` and ``.sweep.md`` in the sweep's folder; returns both and the table."""
    from raas_local.solve.results import write_metrics

    md, table_rows = sweep_table(rows)
    base = f"{problems_path.stem}.{slug(model_label)}.sweep"
    json_path = write_metrics(folder / f"{base}.json", {
        "model": model_label,
        "problems": str(problems_path),
        "max_tokens": sampling.max_tokens,
        "temperature": sampling.temperature,
        "seed": sampling.seed,
        "table": table_rows,
        "runs": rows,
    })
    md_path = folder / f"{base}.md"
    header = (f"raas-local solve sweep: {problems_path.name}, model {model_label}, "
              f"max tokens {sampling.max_tokens}, temperature {sampling.temperature}, seed {sampling.seed}\n\n")
    md_path.write_text(header + md, encoding="utf-8")
    return json_path, md_path, md


def report_sweep(folder: Path, problems_path: Path, model_label: str, rows: list[dict], sampling) -> None:
    """Write the sweep's table files and print the table and where they are."""
    json_path, md_path, md = write_sweep(folder, problems_path, model_label, rows, sampling)
    print()
    print(md, end="")
    print(f"raas-local: sweep table in {md_path} and {json_path}")
    sys.stdout.flush()


def _nl() -> str:
    """A newline first on a terminal, where ^C and the progress bar share the line."""
    return "\n" if sys.stderr.isatty() else ""


def say_interrupted(run: Run | None, done: int, total: int, same_folder: bool, sweep: bool, i: int, n_runs: int) -> None:
    if run is None:
        print(f"{_nl()}raas-local: interrupted before any problem ran; rerun the same command to start", file=sys.stderr)
        return
    where = f" ({run.tag}, run {i} of {n_runs})" if sweep else ""
    folder = " in the same folder" if same_folder else ""
    print(f"{_nl()}raas-local: interrupted: {done}/{total} problems done{where}, saved in {run.out}; "
          f"rerun the same command{folder} to resume", file=sys.stderr)
