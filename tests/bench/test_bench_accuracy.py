"""The accuracy suite end to end on the embedded model: it solves and scores exactly as
`raas-local solve` does, resumes without measuring again, and refuses bad requests
with one line. No timing is asserted."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from cli_testutil import assert_one_line_error, popen_interruptible

PROBLEMS = [
    {"id": "p1", "question": "What is 2 + 3?", "answer": "#### 5"},
    {"id": "p2", "question": "What is 10 - 4?", "answer": "#### 6"},
    {"id": "p3", "question": "What is 3 * 3?", "answer": "#### 9"},
]
ARGS = ["--suite", "accuracy", "--policies", "dense,raas", "--budgets", "96", "-n", "24", "-t", "1"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def cli(*args, timeout=600):
    cmd = [sys.executable, "-m", "raas_local.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def problems(tmp_path_factory):
    path = tmp_path_factory.mktemp("problems") / "tiny.jsonl"
    lines = [json.dumps(p) for p in PROBLEMS]
    path.write_text("\n".join(lines[:2] + ["{not json"] + lines[2:]) + "\n")
    return path


@pytest.fixture(scope="module")
def run_once(problems, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "out"
    r = cli("bench", *ARGS, "--problems", str(problems), "-o", str(out))
    assert r.returncode == 0, r.stderr
    return out, r


def _jsonl(path):
    return {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}


def test_records_tables_and_plot(run_once):
    out, r = run_once
    assert "tiny.jsonl:3:" in r.stderr  # the bad line is a warning, the others run
    recs = {(x["policy"], x["budget"]): x for x in json.loads((out / "results.json").read_text()) if x["suite"] == "accuracy"}
    assert set(recs) == {("dense", None), ("raas", 96)}
    for x in recs.values():
        assert x["n"] == 3 and x["length"] == 24 and x["problems"].startswith("tiny.jsonl (")
        assert x["accuracy"] == x["correct"] / 3
    assert recs[("raas", 96)]["peak_kv_cells"] <= 96
    md = (out / "accuracy.md").read_text()
    assert md.startswith("## Accuracy") and "| raas | 96 |" in md and "| dense | all |" in md
    assert (out / "accuracy.png").read_bytes()[:8] == PNG_MAGIC


def test_answers_equal_those_of_raas_local_solve(run_once, problems, tmp_path):
    out, _ = run_once
    mine = _jsonl(next((out / "accuracy").rglob("embedded.raas-96.s*.max24.results.jsonl")))
    r = cli("solve", str(problems), "--policy", "raas", "--budget", "96", "-n", "24", "--temp", "0", "-t", "1",
            "-o", str(tmp_path / "solve.jsonl"))
    assert r.returncode == 0, r.stderr
    theirs = _jsonl(tmp_path / "solve.jsonl")
    assert set(mine) == set(theirs) == {"p1", "p2", "p3"}
    for pid in mine:
        for f in ("pred_text", "extracted", "correct", "generated_tokens", "peak_kv_cells", "evictions"):
            assert mine[pid][f] == theirs[pid][f], (pid, f)


def test_parallel_answers_equal_one_at_a_time(run_once, problems, tmp_path):
    """--parallel 3: the three problems decode together, each record as one at a time (greedy)."""
    out, _ = run_once
    r = cli("bench", *ARGS, "--parallel", "3", "--problems", str(problems), "-o", str(tmp_path / "par"))
    assert r.returncode == 0, r.stderr
    for name in ("embedded.raas-96.s*.max24.results.jsonl", "embedded.dense.s*.max24.results.jsonl"):
        one = _jsonl(next((out / "accuracy").rglob(name)))
        par = _jsonl(next((tmp_path / "par" / "accuracy").rglob(name)))
        assert set(one) == set(par) == {"p1", "p2", "p3"}
        for pid in one:
            for f in ("pred_text", "extracted", "correct", "generated_tokens", "peak_kv_cells", "evictions"):
                assert one[pid][f] == par[pid][f], (name, pid, f)


def test_a_rerun_resumes_without_generating(run_once, problems, tmp_path):
    # on a copy: the other tests read the first run's folder, in any order
    out = tmp_path / "out"
    shutil.copytree(run_once[0], out)
    before = json.loads((out / "results.json").read_text())
    r = cli("bench", *ARGS, "--problems", str(problems), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "accuracy dense:" not in r.stderr and "accuracy raas-96:" not in r.stderr
    assert json.loads((out / "results.json").read_text()) == before


def test_missing_problems_and_small_budgets_are_refused(problems, tmp_path):
    r = cli("bench", "--suite", "accuracy", "-o", str(tmp_path / "a"))
    assert_one_line_error(r, 4, "--suite accuracy needs --problems FILE")
    r = cli("bench", *ARGS[:4], "--budgets", "40", "--problems", str(problems), "-o", str(tmp_path / "b"))
    assert_one_line_error(r, 3, "budget 40 leaves fewer than two pages")
    assert not list((tmp_path / "b").rglob("*.results.jsonl"))


def test_ctrl_c_keeps_solved_problems_and_a_rerun_completes(problems, tmp_path):
    import signal
    import time

    out = tmp_path / "out"
    args = [sys.executable, "-m", "raas_local.cli", "bench", *ARGS, "--problems", str(problems), "-o", str(out)]
    proc = popen_interruptible(args)
    try:
        deadline = time.monotonic() + 300
        while not any(f.stat().st_size for f in out.rglob("*.results.jsonl")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "timeout"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert f"raas-local: interrupted: finished records are in {out}/; rerun the same command to resume" in stderr
    kept = {f.name: len(f.read_text().splitlines()) for f in out.rglob("*.results.jsonl")}
    assert sum(kept.values()) >= 1
    r = cli("bench", *ARGS, "--problems", str(problems), "-o", str(out))
    assert r.returncode == 0, r.stderr
    recs = [x for x in json.loads((out / "results.json").read_text()) if x["suite"] == "accuracy"]
    assert sorted((x["policy"], x["n"]) for x in recs) == [("dense", 3), ("raas", 3)]
    for f in out.rglob("*.results.jsonl"):
        assert sorted(_jsonl(f)) == ["p1", "p2", "p3"]  # nothing solved twice, nothing lost
