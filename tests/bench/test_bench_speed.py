"""The speed suite runs and writes what it claims; no timing is asserted (benchmarks print figures)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_speed_suite_writes_records_table_and_keeps_the_budget(tmp_path):
    out = tmp_path / "b"
    cmd = [sys.executable, "-m", "raas_local.cli", "bench", "--suite", "speed", "--lengths", "128,600",
           "--budget", "128", "--policies", "dense,raas", "--window", "4", "--reps", "1", "-t", "1", "-o", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    records = json.loads((out / "results.json").read_text())
    assert {(x["policy"], x["length"]) for x in records} == {("dense", 128), ("raas", 128), ("dense", 600), ("raas", 600)}
    for x in records:
        assert set(x) >= {"policy", "budget", "length", "tok_per_s", "kv_cells", "kv_bytes"}
        assert x["tok_per_s"] > 0
    raas600 = next(x for x in records if x["policy"] == "raas" and x["length"] == 600)
    dense600 = next(x for x in records if x["policy"] == "dense" and x["length"] == 600)
    assert raas600["kv_cells"] <= 128 and raas600["evictions"] > 0
    assert dense600["kv_cells"] == 600 + 4
    assert dense600["kv_bytes"] / dense600["kv_cells"] == raas600["kv_bytes"] / raas600["kv_cells"]
    # beyond the budget, dense holding `budget` tokens ran beside the others: the flat-limit ratio is side by side
    assert raas600["dense_at_budget"] > 0 and dense600["dense_at_budget"] == raas600["dense_at_budget"]
    assert all(x["dense_at_budget"] is None for x in records if x["length"] == 128)
    table = (out / "speed.md").read_text()
    assert "raas-128 / dense at budget, beside" in table
    report_md = (out / "report.md").read_text()
    assert "raas at 600 >= 0.95x dense at 128 (flat; side by side)" in report_md
    # the run tag of solve's file names ("raas-128"), as everywhere, not bench's old "raas@128"
    assert "raas-128 / dense" in table and "kv_cells <= budget" in table

    # a second run resumes: nothing is measured again
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "speed raas" not in again.stderr
    assert json.loads((out / "results.json").read_text()) == records
