"""`raas-local run` end to end on the embedded model, and its one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from raas_local.errors import InputError, ModelError, PolicyError, RaasError
from cli_testutil import assert_one_line_error


def run_cli(*args, timeout=300):
    # one thread: n threads on n busy cores spin at every barrier (a 300-token run then took > 300 s)
    threads = () if "-t" in args else ("-t", "1")
    return subprocess.run([sys.executable, "-m", "raas_local.cli", *args, *threads], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_run_writes_text_and_a_valid_stats_file(tmp_path):
    stats = tmp_path / "s.json"
    r = run_cli("run", "--budget", "512", "-p", "What is 17*23?", "-n", "64", "--stats-json", str(stats))
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip()) > 0
    s = json.loads(stats.read_text())
    for key in ("policy", "budget", "prompt_tokens", "generated_tokens", "tok_per_s", "peak_kv_cells", "evictions"):
        assert key in s
    assert s["policy"] == "raas" and s["budget"] == 512
    assert 0 < s["generated_tokens"] <= 64
    assert s["prompt_tokens"] > 5
    assert s["peak_kv_cells"] == s["prompt_tokens"] + s["generated_tokens"]  # nothing evicted below the budget
    assert s["evictions"] == 0 and s["tok_per_s"] > 0
    assert "tok/s" in r.stderr and "peak KV" in r.stderr


def test_run_reads_the_prompt_from_stdin(tmp_path):
    r = subprocess.run([sys.executable, "-m", "raas_local.cli", "run", "-n", "8", "--temp", "0", "-t", "1"],
                       input="What is 2+2?", capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()


def test_budget_is_kept_and_pages_are_evicted(tmp_path):
    stats = tmp_path / "s.json"
    r = run_cli("run", "--budget", "128", "-p", "Count to one hundred.", "-n", "300", "--ignore-eos", "--temp", "0",
                "--stats-json", str(stats))
    assert r.returncode == 0, r.stderr
    s = json.loads(stats.read_text())
    assert s["generated_tokens"] == 300
    assert s["peak_kv_cells"] <= 128
    assert s["evictions"] > 0 and s["evicted_cells"] == 16 * s["evictions"]


def test_missing_model_path(tmp_path):
    r = run_cli("run", str(tmp_path / "nope.gguf"), "-p", "hi")
    assert_one_line_error(r, ModelError.exit_code, "nope.gguf")


def test_a_file_that_is_not_gguf(tmp_path):
    bad = tmp_path / "notes.gguf"
    bad.write_text("these are my notes, not a model\n")
    r = run_cli("run", str(bad), "-p", "hi")
    assert_one_line_error(r, ModelError.exit_code, "notes.gguf")


def test_a_truncated_gguf(tmp_path, embedded_model):
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(Path(embedded_model).read_bytes()[: 5_000_000])
    r = run_cli("run", str(cut), "-p", "hi")
    assert_one_line_error(r, ModelError.exit_code, "cut.gguf")


def test_a_budget_too_small_for_the_prompt_names_the_smallest_that_works():
    r = run_cli("run", "--budget", "48", "-p", "Please explain in detail how photosynthesis works in plants.")
    assert_one_line_error(r, PolicyError.exit_code, "--budget", "or --policy dense")


@pytest.mark.parametrize("args,flag", [
    (("run", "-n", "-5", "-p", "hi"), "-n/--max-tokens"),
    (("run", "-t", "0", "-p", "hi"), "-t/--threads"),
    (("run", "-c", "0", "-p", "hi"), "-c/--ctx-size"),
    (("run", "--budget", "0", "-p", "hi"), "--budget"),
    (("run", "--page-size", "0", "-p", "hi"), "--page-size"),
    (("solve", "--sample", "--limit", "0"), "--limit"),
    (("bench", "--reps", "0"), "--reps"),
])
def test_zero_or_negative_counts_are_usage_errors(args, flag):
    """`run -n -5` once generated 0 tokens in silence: a count below 1 is argparse's one-line error."""
    r = run_cli(*args, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1 and f"argument {flag}: must be at least 1" in errors[0], r.stderr


def test_a_policy_flag_for_another_kind_is_an_error_not_ignored():
    r = run_cli("run", "--policy", "raas", "--heavy-ratio", "0.2", "-p", "hi", timeout=60)
    assert_one_line_error(r, PolicyError.exit_code, "--heavy-ratio does not apply to policy raas (only to h2o)")


@pytest.mark.slow
def test_8000_tokens_at_budget_256_stay_within_budget(tmp_path):
    stats = tmp_path / "s.json"
    r = run_cli("run", "--budget", "256", "-p", "Write a long story about a cat.", "-n", "8000", "--ignore-eos",
                "--stats-json", str(stats), timeout=1200)
    assert r.returncode == 0, r.stderr
    s = json.loads(stats.read_text())
    assert s["generated_tokens"] == 8000
    assert s["peak_kv_cells"] <= 256
    assert s["evictions"] > 0


@pytest.mark.parametrize("stdin", ["", "  \n\n"])
def test_empty_stdin_is_a_one_line_error(stdin):
    r = subprocess.run([sys.executable, "-m", "raas_local.cli", "run", "-n", "8"], input=stdin, capture_output=True,
                       text=True, timeout=120)
    assert_one_line_error(r, InputError.exit_code, "no prompt", "-p PROMPT")
    assert r.stdout == ""


def test_a_dense_cache_that_fills_up_ends_in_one_line_and_keeps_the_text():
    # llama.cpp pads a context to a multiple of 256 cells: -c 64 holds 256
    r = run_cli("run", "--policy", "dense", "-c", "64", "-p", "Count to one hundred.", "-n", "400", "--ignore-eos",
                "--temp", "0", "-t", "1")
    assert_one_line_error(r, RaasError.exit_code, "the KV cache is full (256 cells)", "-c/--ctx-size")
    # nothing from llama.cpp's log: every line on stderr is ours
    assert all(ln.startswith("raas-local: ") for ln in r.stderr.splitlines() if ln.strip()), r.stderr
    assert r.stdout.strip()  # what was generated before the cache filled up is kept


def _start_run(*args):
    from cli_testutil import popen_interruptible

    proc = popen_interruptible([sys.executable, "-m", "raas_local.cli", "run", "--budget", "128", "--ignore-eos",
                                "-n", "100000", "-t", "1", *args])
    # wait for the first generated text, so the signal or the closed pipe lands mid-generation
    first = os.read(proc.stdout.fileno(), 1)
    assert first, proc.stderr.read()
    return proc


def test_ctrl_c_during_run_exits_130_with_one_line():
    proc = _start_run("-p", "Tell me a long story.")
    try:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Exception" not in err
    assert [ln for ln in err.splitlines() if ln.startswith("raas-local: interrupted")], err
    assert all(ln.startswith("raas-local: ") for ln in err.splitlines() if ln.strip()), err


def test_a_reader_that_goes_away_ends_run_quietly():
    # `raas-local run ... | head -c 1`: the pipe closes while tokens still stream
    proc = _start_run("-p", "Tell me a long story.")
    try:
        proc.stdout.close()
        err = proc.stderr.read()
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Exception ignored" not in err and "BrokenPipe" not in err, err
