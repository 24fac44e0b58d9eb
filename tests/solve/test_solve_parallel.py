"""`raas-local solve --parallel N` end to end on the embedded model: the same resumable JSONL as one
at a time, each id once, in finishing order; more slots than problems; sweeps. Kill -9 and resume under
--parallel 4 is test_solve_cli_e2e.test_kill_then_resume, parametrized."""

from __future__ import annotations

import json
import re

from test_solve_cli_e2e import FAST, PROBLEMS, read_lines, run_cli, write_problems


def _by_id(out):
    return {r["id"]: r for r in read_lines(out)}


def test_parallel_records_equal_one_at_a_time(tmp_path):
    """Greedy: each problem's answer, tokens and cache figures are those of a one-at-a-time run."""
    p = write_problems(tmp_path / "p.jsonl", PROBLEMS)
    one, par = tmp_path / "one.jsonl", tmp_path / "par.jsonl"
    for out, n in ((one, "1"), (par, "3")):
        r = run_cli(str(p), "-o", str(out), "--budget", "96", "--page-size", "8", "-n", "64", "--parallel", n, *FAST)
        assert r.returncode == 0, r.stderr
    a, b = _by_id(one), _by_id(par)
    assert sorted(a) == sorted(b) == sorted(x["id"] for x in PROBLEMS)
    assert len(read_lines(par)) == len(PROBLEMS)
    assert any(r["evictions"] > 0 for r in b.values()), "no problem evicted: the budget is not exercised"
    for pid in a:
        for key in ("pred_text", "generated_tokens", "prompt_tokens", "peak_kv_cells", "evictions", "finish_reason",
                    "extracted", "correct"):
            assert a[pid][key] == b[pid][key], (pid, key)
        assert b[pid]["peak_kv_cells"] <= 96


def test_more_slots_than_problems(tmp_path):
    p = write_problems(tmp_path / "p.jsonl", PROBLEMS[:3])
    out = tmp_path / "out.jsonl"
    r = run_cli(str(p), "-o", str(out), "--budget", "256", "-n", "16", "--parallel", "8", *FAST)
    assert r.returncode == 0, r.stderr
    assert sorted(x["id"] for x in read_lines(out)) == sorted(x["id"] for x in PROBLEMS[:3])
    m = json.loads((tmp_path / "out.metrics.json").read_text())
    assert m["n"] == 3


def test_sweep_with_parallel(tmp_path):
    p = write_problems(tmp_path / "p.jsonl", PROBLEMS[:4])
    r = run_cli(str(p), "-o", str(tmp_path), "--policies", "raas,dense", "--budgets", "128", "-n", "16",
                "--parallel", "2", *FAST)
    assert r.returncode == 0, r.stderr
    files = sorted(tmp_path.glob("p.*.results.jsonl"))
    assert len(files) == 2, files
    for f in files:
        assert sorted(x["id"] for x in read_lines(f)) == sorted(x["id"] for x in PROBLEMS[:4])


def test_parallel_with_ray_is_refused(tmp_path):
    p = write_problems(tmp_path / "p.jsonl", PROBLEMS[:1])
    r = run_cli(str(p), "--ray", "local", "--parallel", "2")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("raas-local: error: --parallel does not apply with --ray")


def test_a_dense_context_is_sized_to_the_problems_not_the_training_length(tmp_path):
    """Without -c each of N dense sequences held the model's training context (8192 cells for the
    embedded model, 128k for many 8B models: 16 GiB of KV per sequence); now it holds what its problems
    need: the longest prompt's bytes + 512 + max tokens (llama.cpp's log names the cells it allocated)."""
    p = write_problems(tmp_path / "p.jsonl", PROBLEMS[:2])
    r = run_cli(str(p), "-o", str(tmp_path / "out.jsonl"), "--policy", "dense", "-n", "16", "--parallel", "2", "-v", *FAST)
    assert r.returncode == 0, r.stderr
    sizes = re.findall(r"llama_kv_cache: size = .*?\(\s*(\d+) cells,.*?(\d+)/\d+ seqs", r.stderr)
    assert sizes, r.stderr[-2000:]
    cells, seqs = map(int, sizes[-1])  # cells per sequence (one KV stream each)
    # the prompts are short: 512 for the template + 16 tokens + the problem's bytes, padded to 256 by llama.cpp
    assert seqs == 2 and 512 + 16 < cells <= 1024, (cells, seqs)
