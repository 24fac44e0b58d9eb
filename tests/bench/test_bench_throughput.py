"""The throughput suite end to end on the embedded model: dense and raas at N = 1 and 2 side by side in
one run, each record counting every problem's tokens, its table and plot; a rerun measures nothing again.
No timing is asserted (the speed-up is the bench's to report, not a unit test's)."""

from __future__ import annotations

import json

import pytest

from test_bench_accuracy import PNG_MAGIC, cli

PROBLEMS = [
    {"id": "p1", "question": "What is 2 + 3?", "answer": "#### 5"},
    {"id": "p2", "question": "What is 10 - 4?", "answer": "#### 6"},
    {"id": "p3", "question": "What is 3 * 3?", "answer": "#### 9"},
]
ARGS = ["--suite", "throughput", "--policies", "dense,raas", "--budget", "96", "--page-size", "8", "--parallel", "1,2",
        "-n", "24", "-t", "1"]


def test_throughput_records_table_plot_and_resume(tmp_path):
    problems = tmp_path / "tiny.jsonl"
    problems.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    out = tmp_path / "out"
    r = cli("bench", *ARGS, "--problems", str(problems), "-o", str(out))
    assert r.returncode == 0, r.stderr
    recs = {(x["policy"], x["length"]): x for x in json.loads((out / "results.json").read_text())}
    assert set(recs) == {("dense", 1), ("dense", 2), ("raas", 1), ("raas", 2)}
    for (policy, n), x in recs.items():
        assert x["n"] == 3 and x["max_tokens"] == 24 and x["problems"].startswith("tiny.jsonl (")
        assert 0 < x["generated_tokens"] <= 3 * 24
        assert x["problems_per_min"] == pytest.approx(3 / x["wall_s"] * 60, rel=1e-3)  # wall_s is rounded
        assert x["tok_per_s"] == pytest.approx(x["generated_tokens"] / x["wall_s"], rel=1e-3)
    assert recs[("raas", 1)]["peak_kv_cells"] <= 96 and recs[("raas", 2)]["peak_kv_cells"] <= 96
    # greedy: a problem generates the same tokens alone or two at a time
    for policy in ("dense", "raas"):
        assert recs[(policy, 1)]["generated_tokens"] == recs[(policy, 2)]["generated_tokens"]
    md = (out / "throughput.md").read_text()
    assert "| N | dense problems/min | raas-96 problems/min |" in md
    assert "| 1 |" in md and "| 2 |" in md and "1.00x" in md
    assert (out / "throughput.png").read_bytes().startswith(PNG_MAGIC)

    before = (out / "results.json").read_text()
    again = cli("bench", *ARGS, "--problems", str(problems), "-o", str(out))
    assert again.returncode == 0, again.stderr
    assert (out / "results.json").read_text() == before  # nothing measured again
    assert (out / "throughput.md").read_text() == md
