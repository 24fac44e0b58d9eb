"""`raas-local solve`: file names and the errors that come before any model runs.

Everything here fails (or finishes) before the engine is created, so these
tests are fast; the runs on the real model are in test_solve_cli_e2e.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from raas_local.errors import InputError, PolicyError
from raas_local.policies import CachePolicy
from raas_local.solve.plan import default_out_name, metrics_path_beside
from cli_testutil import assert_one_line_error


def run_cli(*args, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "raas_local.cli", "solve", *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, cwd=cwd)


def test_default_names():
    assert default_out_name("data/gsm8k.jsonl", "smollm2-135m", CachePolicy(kind="raas", budget=512)) == \
        "gsm8k.smollm2-135m.raas-512.results.jsonl"
    assert default_out_name("p.jsonl", "smollm2-135m", CachePolicy(kind="dense")) == "p.smollm2-135m.dense.results.jsonl"
    # a model label that is not a plain name is made safe for a file name
    assert default_out_name("p.jsonl", "org/repo:Q4", CachePolicy(kind="raas", budget=256)) == "p.org_repo_Q4.raas-256.results.jsonl"


def test_metrics_beside_results():
    assert metrics_path_beside("/x/run.results.jsonl") == Path("/x/run.metrics.json")
    assert metrics_path_beside("/x/out.jsonl") == Path("/x/out.metrics.json")
    assert metrics_path_beside("out.txt") == Path("out.txt.metrics.json")
    # two runs of a sweep never share a metrics file
    a = metrics_path_beside(default_out_name("p.jsonl", "m", CachePolicy(kind="raas", budget=256)))
    b = metrics_path_beside(default_out_name("p.jsonl", "m", CachePolicy(kind="raas", budget=512)))
    assert a != b


def test_missing_problems_file(tmp_path):
    r = run_cli(str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "out.jsonl"))
    assert_one_line_error(r, InputError.exit_code, "nope.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_no_problems_given(tmp_path):
    r = run_cli(cwd=tmp_path)
    assert_one_line_error(r, InputError.exit_code, "--sample")
    r = run_cli("p.jsonl", "--sample", cwd=tmp_path)
    assert_one_line_error(r, InputError.exit_code, "not both")


def test_only_bad_lines(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text('{"id": 1, "problem": "1+1?"\n{"id": 2, "problem": "2+2?"}\n')
    r = run_cli(str(p), "-o", str(tmp_path / "out.jsonl"))
    assert_one_line_error(r, InputError.exit_code, "no valid problems")
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("raas-local: warning:")]
    assert len(warnings) == 2
    assert f"{p}:1:" in warnings[0] and "invalid JSON" in warnings[0]
    assert f"{p}:2:" in warnings[1] and "answer" in warnings[1]


def test_unknown_policy_and_bad_lists(tmp_path):
    r = run_cli("--sample", "--policy", "nosuch", "-o", str(tmp_path / "o.jsonl"))
    assert_one_line_error(r, PolicyError.exit_code, "nosuch")
    r = run_cli("--sample", "--policies", "raas,nosuch", "-o", str(tmp_path))
    assert_one_line_error(r, PolicyError.exit_code, "nosuch")
    r = run_cli("--sample", "--budgets", "256,abc")  # argparse's own usage error
    assert r.returncode == 2 and "--budgets" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("--sample", "--limit", "0")
    assert r.returncode == 2 and "--limit" in r.stderr


def test_out_must_not_be_the_problems_file(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text('{"id": 1, "problem": "1+1?", "answer": 2}\n')
    r = run_cli(str(p), "-o", str(p))
    assert_one_line_error(r, InputError.exit_code, "problems file")
    assert p.read_text() == '{"id": 1, "problem": "1+1?", "answer": 2}\n'


def test_sweep_out_must_be_a_folder(tmp_path):
    r = run_cli("--sample", "--policies", "raas,dense", "-o", str(tmp_path / "x.jsonl"))
    assert_one_line_error(r, InputError.exit_code, "folder")


def test_budget_too_small_fails_before_generating(tmp_path):
    out = tmp_path / "out.jsonl"
    r = run_cli("--sample", "--budget", "48", "-o", str(out), "-t", "1")
    assert_one_line_error(r, PolicyError.exit_code, "budget 48", "--budget ")
    assert not out.exists()


def test_resuming_another_runs_file_is_refused(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text('{"id": "a", "problem": "1+1?", "answer": 2}\n{"id": "b", "problem": "2+2?", "answer": 4}\n')
    out = tmp_path / "out.jsonl"
    rec = {"id": "a", "gold": "2", "pred_text": "2", "extracted": "2", "correct": True, "generated_tokens": 1,
           "peak_kv_cells": 40, "evictions": 0, "seconds": 0.1,
           "run": {"model": "smollm2-135m", "policy": "raas", "budget": 256, "page_size": 16,
                   "refresh_ratio": 0.5, "max_tokens": 32, "temperature": 0.6, "top_p": 0.95, "top_k": 40,
                   "seed": 0}}
    out.write_text(json.dumps(rec) + "\n")
    r = run_cli(str(p), "-o", str(out), "--budget", "512")
    assert_one_line_error(r, InputError.exit_code, str(out), "budget 256", "budget 512", "-o")
    assert out.read_text() == json.dumps(rec) + "\n"


def test_completed_run_loads_no_model(tmp_path, monkeypatch, capsys):
    """Every problem already in OUT: metrics are rewritten, the engine is never created."""
    import raas_local.cli as top
    import raas_local.flags as flags

    p = tmp_path / "p.jsonl"
    p.write_text('{"id": "a", "problem": "1+1?", "answer": 2}\n{"id": "b", "problem": "2+2?", "answer": 4}\n')
    out = tmp_path / "out.jsonl"
    base = {"pred_text": "x", "generated_tokens": 10, "peak_kv_cells": 50, "evictions": 0, "seconds": 0.5}
    out.write_text(json.dumps({"id": "a", "gold": "2", "extracted": "2", "correct": True, **base}) + "\n"
                   + json.dumps({"id": "b", "gold": "4", "extracted": "5", "correct": False, **base}) + "\n")

    def no_engine(args, policy=None):
        raise AssertionError("the engine must not be loaded")

    monkeypatch.setattr(flags, "engine_from_args", no_engine)
    assert top.main(["solve", str(p), "-o", str(out), "--budget", "256"]) == 0
    m = json.loads((tmp_path / "out.metrics.json").read_text())
    assert (m["n"], m["correct"], m["answered"], m["accuracy"]) == (2, 1, 2, 0.5)
    assert (m["policy"], m["budget"], m["model"]) == ("raas", 256, "smollm2-135m")
    assert "(0 new, 2 resumed)" in capsys.readouterr().out
