"""`raas-local solve` end to end on the embedded model (SmolLM2-135M), no mocks.

Runs go through ``python -m raas_local.cli solve`` in a subprocess, the way a
user runs them.  They pass ``-t 1``: the test machine's two cores are shared
with other work, and llama.cpp's spinning thread pool slows down several-fold
when its threads have to wait for a core.  Short ``-n`` keeps each problem
about a second; the SmolLM2 answers are mostly wrong, which does not matter
here: what is checked is the files, the counts and the exit codes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_testutil import popen_interruptible
from raas_local.solve.results import RECORD_KEYS

FAST = ("-t", "1", "--temp", "0")
METRIC_KEYS = ("accuracy", "answered", "n", "timeouts", "mean_generated_tokens", "peak_kv_cells", "tok_per_s",
               "policy", "budget", "model")

PROBLEMS = [
    {"id": "add", "problem": "What is 2 + 3?", "answer": "5"},
    {"id": "mul", "question": "What is 6 times 7?", "answer": 42},
    {"id": "sub", "problem": "What is 10 - 4?", "answer": "#### 6"},
    {"id": "div", "problem": "What is 12 divided by 4?", "solution": "12/4 = \\boxed{3}"},
    {"id": "sq", "problem": "What is 9 squared?", "answer": "81"},
    {"id": "half", "problem": "What is half of 50?", "answer": 25},
    {"id": "sum", "problem": "What is 1 + 2 + 3 + 4?", "answer": 10},
    {"id": "frac", "problem": "Simplify 6/8.", "answer": "\\frac{3}{4}"},
]


# the interrupt tests need a run that is surely still going after two lines (the signal follows
# the second line within a poll of 50 ms; a problem takes about a second): 16 problems, of
# which the resume then solves the rest (40 made the kill test run for minutes)
MANY = [dict(item, id=f"{item['id']}-{k}") for k in range(2) for item in PROBLEMS]


def cmd(*args):
    return [sys.executable, "-m", "raas_local.cli", "solve", *args]


def run_cli(*args, cwd=None, timeout=600, env=None):
    return subprocess.run(cmd(*args), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, cwd=cwd, env=env)


def write_problems(path: Path, items) -> Path:
    path.write_text("".join((it if isinstance(it, str) else json.dumps(it)) + "\n" for it in items))
    return path


def read_lines(out: Path) -> list[dict]:
    data = out.read_bytes()
    assert data.endswith(b"\n"), "the results file ends in a half line"
    return [json.loads(line) for line in data.decode("utf-8").splitlines()]


def wait_for_lines(out: Path, n: int, proc: subprocess.Popen, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if out.exists() and out.read_bytes().count(b"\n") >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"solve ended (rc {proc.returncode}) before {n} lines: {proc.stderr.read()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no {n} lines in {out} after {timeout}s")


def test_solve_a_small_file_end_to_end(tmp_path):
    p = write_problems(tmp_path / "p.jsonl", [
        PROBLEMS[0],
        PROBLEMS[1],
        '{"id": "broken", "problem": "What is 1+1?"',  # line 3: invalid JSON
        PROBLEMS[2],
        {"id": "noanswer", "problem": "What is 3+3?"},  # line 5: no answer
        PROBLEMS[3],
    ])
    out = tmp_path / "out.jsonl"
    r = run_cli(str(p), "-o", str(out), "--budget", "256", "-n", "32", *FAST)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr

    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("raas-local: warning:")]
    assert len(warnings) == 2, r.stderr
    assert f"{p}:3:" in warnings[0] and "invalid JSON" in warnings[0]
    assert f"{p}:5:" in warnings[1] and "answer" in warnings[1]

    recs = read_lines(out)
    assert [r_["id"] for r_ in recs] == ["add", "mul", "sub", "div"]
    for rec in recs:
        assert set(RECORD_KEYS) <= set(rec), rec
        assert isinstance(rec["correct"], bool) and rec["timed_out"] is False
        assert 0 < rec["generated_tokens"] <= 32
        assert rec["peak_kv_cells"] == rec["prompt_tokens"] + rec["generated_tokens"]  # nothing evicted
        assert rec["evictions"] == 0 and rec["finish_reason"] in ("stop", "length")
        assert rec["run"]["model"] == "smollm2-135m" and rec["run"]["budget"] == 256
    assert [r_["gold"] for r_ in recs] == ["5", "42", "6", "3"]

    m = json.loads((tmp_path / "out.metrics.json").read_text())
    for key in METRIC_KEYS:
        assert key in m, key
    assert m["n"] == 4 and m["timeouts"] == 0
    assert m["accuracy"] == sum(r_["correct"] for r_ in recs) / 4
    assert m["answered"] == sum(r_["extracted"] is not None for r_ in recs)
    assert m["peak_kv_cells"] == max(r_["peak_kv_cells"] for r_ in recs) <= 256
    assert m["tok_per_s"] > 0 and m["mean_generated_tokens"] > 0
    assert (m["policy"], m["budget"], m["model"]) == ("raas", 256, "smollm2-135m")

    summary = [ln for ln in r.stdout.splitlines() if ln.startswith("raas-local: p.jsonl:")]
    assert len(summary) == 1 and "4/4 problems (4 new, 0 resumed)" in summary[0], r.stdout


def _resume_and_check(p: Path, out: Path, args: list[str], items: list[dict], done_before: int) -> None:
    n_valid = len(items)
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    recs = read_lines(out)  # valid JSON lines only, ending in "\n"
    ids = [rec["id"] for rec in recs]
    assert sorted(ids) == sorted(x["id"] for x in items)  # each id exactly once
    assert len(ids) == len(set(ids)) == n_valid
    m = json.loads((out.parent / "out.metrics.json").read_text())
    assert m["n"] == n_valid
    assert f"{n_valid - done_before} new, {done_before} resumed" in r.stdout, r.stdout


@pytest.mark.parametrize("slots", [(), ("--parallel", "4")], ids=["one-at-a-time", "parallel-4"])
def test_kill_then_resume(tmp_path, slots):
    """SIGKILL mid-batch (a crash; with --parallel 4, four problems in flight): the lines written stay
    whole and the rerun (with the same flags) finishes each problem exactly once."""
    p = write_problems(tmp_path / "p.jsonl", MANY)
    out = tmp_path / "out.jsonl"
    args = [str(p), "-o", str(out), "--budget", "256", "-n", "40", *slots, *FAST]
    proc = subprocess.Popen(cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            text=True)
    try:
        wait_for_lines(out, 2, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    done = len(read_lines(out))
    assert 2 <= done < len(MANY)
    _resume_and_check(p, out, args, MANY, done)


def test_ctrl_c_then_resume(tmp_path):
    """SIGINT mid-batch: exit 130 with one line naming the count and how to resume."""
    p = write_problems(tmp_path / "p.jsonl", MANY)
    out = tmp_path / "out.jsonl"
    args = [str(p), "-o", str(out), "--budget", "256", "-n", "40", *FAST]
    proc = popen_interruptible(cmd(*args))
    try:
        wait_for_lines(out, 2, proc)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    done = len(read_lines(out))
    assert 2 <= done < len(MANY)
    assert lines[0].startswith("raas-local: interrupted:")
    assert f"{done}/{len(MANY)} problems done" in lines[0] and str(out) in lines[0]
    assert "rerun the same command" in lines[0]
    m = json.loads((tmp_path / "out.metrics.json").read_text())  # metrics of what is on disk
    assert m["n"] == done
    _resume_and_check(p, out, args, MANY, done)


def test_sample_out_of_the_box_then_rerun_does_nothing(tmp_path):
    args = ["--sample", "--budget", "256", "-n", "32", "--limit", "5", *FAST]
    r = run_cli(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "sample.smollm2-135m.raas-256.results.jsonl"
    metrics = tmp_path / "sample.smollm2-135m.raas-256.metrics.json"
    recs = read_lines(out)
    assert [rec["id"] for rec in recs] == ["gsm-01", "gsm-02", "gsm-03", "gsm-04", "gsm-05"]
    m1 = json.loads(metrics.read_text())
    assert m1["n"] == 5 and m1["budget"] == 256 and m1["policy"] == "raas"
    assert "5/5 problems (5 new, 0 resumed)" in r.stdout
    before = out.read_bytes()

    # no model load, no generation: the rerun runs with llama.cpp's library pointed at an empty folder
    r2 = run_cli(*args, cwd=tmp_path, env=dict(os.environ, LLAMA_CPP_LIB_PATH=str(tmp_path / "no-libllama")))
    assert r2.returncode == 0, r2.stderr
    assert "5/5 problems (0 new, 5 resumed)" in r2.stdout
    assert out.read_bytes() == before  # nothing generated, nothing appended
    m2 = json.loads(metrics.read_text())
    for key in ("n", "correct", "answered", "timeouts", "peak_kv_cells", "mean_generated_tokens", "accuracy"):
        assert m2[key] == m1[key], key


def test_sweep_writes_the_table(tmp_path):
    sweep_dir = tmp_path / "sweep"
    r = run_cli("--sample", "--policies", "raas,dense", "--budgets", "128,256", "--limit", "2", "-n", "24",
                "-o", str(sweep_dir), *FAST)
    assert r.returncode == 0, r.stderr
    names = sorted(f.name for f in sweep_dir.iterdir())
    assert names == sorted([
        "sample.smollm2-135m.raas-128.results.jsonl", "sample.smollm2-135m.raas-128.metrics.json",
        "sample.smollm2-135m.raas-256.results.jsonl", "sample.smollm2-135m.raas-256.metrics.json",
        "sample.smollm2-135m.dense.results.jsonl", "sample.smollm2-135m.dense.metrics.json",
        "sample.smollm2-135m.sweep.md", "sample.smollm2-135m.sweep.json",
    ])
    for f in sweep_dir.glob("*.results.jsonl"):
        assert [rec["id"] for rec in read_lines(f)] == ["gsm-01", "gsm-02"]
    data = json.loads((sweep_dir / "sample.smollm2-135m.sweep.json").read_text())
    rows = [(row["policy"], row["budget"], row["n"]) for row in data["table"]]
    assert rows == [("raas", 128, 2), ("raas", 256, 2), ("dense", None, 2)]
    assert all(row["peak_kv_cells"] <= 128 for row in data["runs"] if row["budget"] == 128)
    md = (sweep_dir / "sample.smollm2-135m.sweep.md").read_text()
    table = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert len(table) == 2 + 3 and "| dense | n/a |" in table[-1]
    assert "| policy | budget | accuracy |" in r.stdout  # the table is printed too
    assert "| raas | 128 |" in r.stdout


def test_h2o_heavy_ratio_reaches_the_run_and_its_records(tmp_path):
    """`--heavy-ratio` used to be dropped by solve (it ran h2o at 0.5)."""
    p = write_problems(tmp_path / "p.jsonl", PROBLEMS[:1])
    out = tmp_path / "out.jsonl"
    r = run_cli(str(p), "-o", str(out), "--policy", "h2o", "--heavy-ratio", "0.2", "--budget", "256", "-n", "8", *FAST)
    assert r.returncode == 0, r.stderr
    (rec,) = read_lines(out)
    assert rec["run"]["policy"] == "h2o" and rec["run"]["heavy_ratio"] == 0.2
    # a resume with another ratio is another run: refused, the file kept
    r = run_cli(str(p), "-o", str(out), "--policy", "h2o", "--heavy-ratio", "0.3", "--budget", "256", "-n", "8", *FAST)
    assert r.returncode == 4 and "Traceback" not in r.stderr
    assert read_lines(out) == [rec]


def test_h2o_budgets_are_checked_per_cell_not_per_page(tmp_path):
    """solve's pre-check used two pages of 16 for h2o, whose pages are single cells, and so refused
    budgets that `run` accepts."""
    import re

    p = write_problems(tmp_path / "p.jsonl", PROBLEMS[:1])
    r = run_cli(str(p), "-o", str(tmp_path / "raas.jsonl"), "--policy", "raas", "--budget", "40", *FAST)
    assert r.returncode == 3, r.stderr
    n_prompt = int(re.search(r"use --budget (\d+)", r.stderr).group(1)) - 2 * 16  # raas: two pages of 16
    out = tmp_path / "h2o.jsonl"
    r = run_cli(str(p), "-o", str(out), "--policy", "h2o", "--budget", str(n_prompt + 2), "-n", "6", *FAST)
    assert r.returncode == 0, r.stderr
    (rec,) = read_lines(out)
    assert rec["peak_kv_cells"] <= n_prompt + 2 and rec["generated_tokens"] > 0
