"""The fidelity suite end to end on the embedded model: records, the dense reference row,
the no-eviction identity, plots, tables, resume, and the prompt-fit refusal. No timing is asserted."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

PROMPT = "Q: 2+3=?\nA:"  # a few tokens, so budget 48 still leaves two pages
ARGS = ["--suite", "fidelity,memory", "--policies", "dense,raas", "--chain", "40", "--budgets", "48,64",
        "--lengths", "100,300", "--budget", "64", "--prompt", PROMPT, "-t", "1"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def bench(out, *extra, timeout=600):
    cmd = [sys.executable, "-m", "raas_local.cli", "bench", *ARGS, *extra, "-o", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR", path
    w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert w > 100 and h > 100
    import matplotlib.image

    assert matplotlib.image.imread(str(path)).shape[:2] == (h, w)  # decodes as a whole


@pytest.fixture(scope="module")
def run_once(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "out"
    r = bench(out)
    assert r.returncode == 0, r.stderr
    return out, r


def test_fidelity_records_reference_row_and_no_eviction_identity(run_once):
    out, _ = run_once
    recs = [r for r in json.loads((out / "results.json").read_text()) if r["suite"] == "fidelity"]
    assert {(r["policy"], r["budget"]) for r in recs} == {("dense", None), ("raas", 48), ("raas", 64)}
    for r in recs:
        assert set(r) >= {"suite", "policy", "budget", "length", "top1_agreement", "mean_kl", "tok_per_s",
                          "kv_cells", "kv_bytes", "model", "page_size"}
        assert r["length"] == 40
        assert 0.0 <= r["top1_agreement"] <= 1.0
        assert r["mean_kl"] >= 0.0
        assert r["tok_per_s"] > 0
    dense = next(r for r in recs if r["policy"] == "dense")
    assert dense["top1_agreement"] == 1.0 and dense["mean_kl"] == 0.0
    # prompt + 40 tokens < 64: nothing is evicted, the logits are dense's bit for bit
    above = next(r for r in recs if r["budget"] == 64)
    assert above["evictions"] == 0 and above["kv_cells"] == dense["kv_cells"]
    assert above["top1_agreement"] == 1.0 and above["mean_kl"] == 0.0 and above["first_miss"] is None
    below = next(r for r in recs if r["budget"] == 48)
    assert below["evictions"] > 0 and below["kv_cells"] <= 48


def test_memory_records_keep_the_budget_and_dense_holds_every_token(run_once):
    out, _ = run_once
    recs = [r for r in json.loads((out / "results.json").read_text()) if r["suite"] == "memory"]
    assert {(r["policy"], r["length"]) for r in recs} == {("dense", 100), ("dense", 300), ("raas", 100), ("raas", 300)}
    for r in recs:
        if r["policy"] == "dense":
            assert r["kv_cells"] == r["length"] and r["budget"] is None
        else:
            assert r["kv_cells"] <= r["budget"] == 64
        assert r["kv_bytes"] > 0 and r["kv_bytes"] % r["kv_cells"] == 0
    raas300 = next(r for r in recs if r["policy"] == "raas" and r["length"] == 300)
    assert raas300["evictions"] > 0 and raas300["kv_bytes_dense"] > raas300["kv_bytes"]


def test_outputs_plots_tables_report(run_once):
    out, r = run_once
    for name in ("fidelity.png", "memory.png"):
        assert_png(out / name)
    fid = (out / "fidelity.md").read_text()
    assert "dense (reference)" in fid and "| raas | 48 |" in fid and "fidelity.png" in fid
    mem = (out / "memory.md").read_text()
    assert "raas-64 / dense" in mem and "met: kv_cells <= budget" in mem
    report = (out / "report.md").read_text()
    assert report.startswith("# raas-local bench") and "## Fidelity" in report and "## Memory" in report
    assert "| policy | budget |" in r.stdout  # tables go to stdout, progress to stderr
    # the large log-prob file is removed once every record is in; the chain stays documented
    assert not (out / "fidelity-ref-40.f16").exists()
    assert len(json.loads((out / "fidelity-ref-40.json").read_text())["chain"]) == 40


def test_resume_skips_records_and_measures_only_what_is_missing(run_once, tmp_path):
    # on a copy: the other tests read the first run's folder, in any order
    out = tmp_path / "out"
    shutil.copytree(run_once[0], out)
    before = json.loads((out / "results.json").read_text())
    again = bench(out)
    assert again.returncode == 0, again.stderr
    assert "fidelity raas" not in again.stderr and "memory raas" not in again.stderr
    assert "dense reference" not in again.stderr
    assert json.loads((out / "results.json").read_text()) == before

    # drop one record: only it is measured again (after the reference is regenerated)
    kept = [r for r in before if not (r["suite"] == "fidelity" and r["budget"] == 48)]
    (out / "results.json").write_text(json.dumps(kept))
    third = bench(out)
    assert third.returncode == 0, third.stderr
    assert "fidelity raas-48" in third.stderr and "fidelity raas-64" not in third.stderr
    assert "memory dense" not in third.stderr and "memory raas" not in third.stderr
    after = json.loads((out / "results.json").read_text())
    redo = next(r for r in after if r["suite"] == "fidelity" and r["budget"] == 48)
    old = next(r for r in before if r["suite"] == "fidelity" and r["budget"] == 48)
    # the greedy chain and the policy are deterministic: the same figures come back
    assert (redo["top1_agreement"], redo["evictions"]) == (old["top1_agreement"], old["evictions"])
    assert redo["mean_kl"] == pytest.approx(old["mean_kl"], rel=1e-6, abs=1e-9)


def test_a_budget_too_small_for_the_prompt_is_refused_before_any_work(tmp_path):
    cmd = [sys.executable, "-m", "raas_local.cli", "bench", "--suite", "fidelity", "--policies", "raas",
           "--chain", "40", "--budgets", "32", "-t", "1", "-o", str(tmp_path / "o")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert r.returncode == 3, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("raas-local: error:")]
    assert len(errors) == 1 and "budgets of at least" in errors[0], r.stderr
    assert not list((tmp_path / "o").glob("fidelity-ref-*"))


def test_kl_is_zero_for_identical_logits_and_positive_otherwise():
    from raas_local.bench.fidelity import kl16, log_softmax16

    rng = np.random.default_rng(0)
    a = (rng.standard_normal(49152) * 4).astype(np.float32)
    la = log_softmax16(a)
    assert la.dtype == np.float16 and np.all(la <= 0)
    assert kl16(la, log_softmax16(a.copy())) == 0.0
    b = a + (rng.standard_normal(a.shape) * 0.5).astype(np.float32)
    got = kl16(la, log_softmax16(b))
    # float64 KL of the unrounded distributions: float16 storage changes it by far less than 1%
    pa = np.exp(a - a.max()); pa /= pa.sum()
    pb = np.exp(b - b.max()); pb /= pb.sum()
    exact = float(np.sum(pa * (np.log(pa) - np.log(pb))))
    assert got > 0 and got == pytest.approx(exact, rel=1e-2)
