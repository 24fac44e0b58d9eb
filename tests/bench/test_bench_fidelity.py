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
    assert not (out / "fidelity-ref-prompt-40.f16").exists()
    assert len(json.loads((out / "fidelity-ref-prompt-40.json").read_text())["chain"]) == 40


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


# -- several prompts (--prompts) and policy variants ---------------------------------------------

PROMPTS = [{"id": "add", "prompt": "Q: 2+3=?\nA:"}, {"id": "list", "prompt": "Colours:\n1."},
           {"id": "held", "prompt": "Q: 7*6=?\nA:", "held_out": True}]
# chain 96 at budget 48: four evictions, enough for the default and the paper setting (page score max, r = 0.5)
# to part on prompt "add"
PAPER = "raas[refresh_ratio=0.5;page_score=max]"
MULTI = ["--suite", "fidelity", "--policies", "dense,raas,raas:page_score=max;refresh_ratio=0.5,streaming", "--chain", "96",
         "--budgets", "48", "-t", "1"]


def bench_prompts(out, prompts_file, *extra):
    cmd = [sys.executable, "-m", "raas_local.cli", "bench", *MULTI, "--prompts", str(prompts_file), *extra,
           "-o", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)


def write_prompts(path, prompts):
    path.write_text("".join(json.dumps(p) + "\n" for p in prompts))
    return path


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    d = tmp_path_factory.mktemp("multi")
    pf = write_prompts(d / "prompts.jsonl", PROMPTS)
    r = bench_prompts(d / "out", pf)
    assert r.returncode == 0, r.stderr
    return d / "out", pf, r


def fid_records(out):
    return [r for r in json.loads((out / "results.json").read_text()) if r["suite"] == "fidelity"]


def test_every_prompt_gets_its_own_chain_and_every_variant_its_own_record(multi):
    from raas_local.bench.fidelity import DenseReference
    from raas_local.bench.variants import series

    out, _, r = multi
    recs = fid_records(out)
    got = {(x["prompt"], series(x["policy"], x["settings"]), x["budget"]) for x in recs}
    names = ("raas", PAPER, "streaming")
    assert got == {(p["id"], "dense", None) for p in PROMPTS} | {(p["id"], n, 48) for p in PROMPTS for n in names}
    assert all((x["settings"]["refresh_ratio"], x["settings"]["page_score"]) ==
               ((0.5, "max") if series(x["policy"], x["settings"]) == PAPER else (0.25, "mean"))
               for x in recs if x["policy"] == "raas")
    chains = {p["id"]: json.loads((out / f"fidelity-ref-{p['id']}-96.json").read_text())["chain"] for p in PROMPTS}
    assert len({tuple(c) for c in chains.values()}) == 3  # three prompts, three different chains
    assert not list(out.glob("fidelity-ref-*.f16"))  # every prompt's records are in: log-probs removed
    # the variant's settings reach the native cache: its figures are those of a direct run of that policy
    from raas_local.bench.fidelity import teacher_force
    from raas_local.engine import Engine
    from raas_local.policies import make

    ref = DenseReference(out / "again", 96, "add")
    with Engine(policy=make("dense"), n_ctx=128, n_threads=1) as eng:
        ref.generate(eng, "embedded", PROMPTS[0]["prompt"], eng.tokenize(PROMPTS[0]["prompt"]))
    assert ref.chain == chains["add"]
    kls = []
    for rr, ps in ((0.5, "max"), (0.25, "mean")):
        direct = teacher_force(None, make("raas", budget=48, refresh_ratio=rr, page_score=ps), ref, n_threads=1)
        stored = next(x for x in recs if x["prompt"] == "add" and x["policy"] == "raas"
                      and x["settings"]["refresh_ratio"] == rr and x["settings"]["page_score"] == ps)
        assert (stored["top1_agreement"], stored["evictions"]) == (direct.top1_agreement, direct.evictions)
        assert stored["mean_kl"] == pytest.approx(direct.mean_kl, rel=1e-6, abs=1e-9)
        kls.append(stored["mean_kl"])
    assert kls[0] != pytest.approx(kls[1], rel=1e-3)  # the two settings evict differently here
    # progress lines name each variant and prompt (brackets once vanished as rich markup)
    assert f"fidelity {PAPER}-48 [held]" in r.stderr


def test_the_tables_report_per_prompt_and_the_means_held_out_apart(multi):
    out, _, r = multi
    recs = fid_records(out)
    md = (out / "fidelity.md").read_text()
    mean_rows = {ln.split(" | ")[0].strip("| "): ln for ln in md.splitlines() if ln.startswith("| raas") and "/" not in ln}

    def top1(pid, pol="raas", rr=0.25):
        return next(x["top1_agreement"] for x in recs if x["prompt"] == pid and x["policy"] == pol
                    and (pol != "raas" or x["settings"]["refresh_ratio"] == rr))

    cells = mean_rows["raas"].strip("| ").split(" | ")
    assert cells[1] == "48"
    assert float(cells[2]) == pytest.approx((top1("add") + top1("list")) / 2, abs=5e-4)  # sweep prompts only
    assert float(cells[3]) == pytest.approx(min(top1("add"), top1("list")), abs=5e-4)
    assert float(cells[5]) == pytest.approx((top1("add") + top1("list")) / 2
                                            - (top1("add", "streaming") + top1("list", "streaming")) / 2, abs=1e-3)
    assert float(cells[6]) == pytest.approx(top1("held"), abs=5e-4)  # the held-out mean
    assert "top-1 (mean of 2)" in md and "held-out top-1 (mean of 1)" in md
    per_prompt = [ln for ln in md.splitlines() if ln.startswith("| policy | budget | add top-1 / KL")]
    assert per_prompt and "held* top-1 / KL" in per_prompt[0]
    assert f"| raas | 48 | {top1('add'):.3f} / " in md
    assert "held out of the means: held" in md
    assert any("streaming - 0.005" in ln for ln in md.splitlines() if ln.startswith("- raas"))
    assert_png(out / "fidelity.png")


def test_resume_is_per_prompt_and_per_variant(multi, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(multi[0], out)
    before = fid_records(out)
    # a changed prompt text is measured anew under the same id; the others are kept
    changed = [PROMPTS[0], {**PROMPTS[1], "prompt": "Fruits:\n1."}, PROMPTS[2]]
    pf = write_prompts(tmp_path / "p.jsonl", changed)
    r = bench_prompts(out, pf)
    assert r.returncode == 0, r.stderr
    measured = [ln for ln in r.stderr.splitlines() if ln.startswith("fidelity ") and "top-1" in ln]
    assert measured and all(ln.endswith("KV cells") and "[list]" in ln for ln in measured), measured
    assert len(measured) == 3
    # a new variant is measured on every prompt; nothing else is
    r = bench_prompts(out, pf, "--policies", "raas,raas:refresh_ratio=0.75")
    assert r.returncode == 0, r.stderr
    measured = [ln for ln in r.stderr.splitlines() if ln.startswith("fidelity ") and "top-1" in ln]
    assert len(measured) == 3 and all("raas[refresh_ratio=0.75]-48" in ln for ln in measured), measured
    after = fid_records(out)
    assert len(after) == len(before) + 4 + 3  # the changed prompt's 4 records kept beside the old text's, + 3
    # the table shows what this command asked for only
    md = (out / "fidelity.md").read_text()
    assert "| raas[refresh_ratio=0.75] |" in md and f"| {PAPER} |" not in md
    assert "| streaming |" not in md and "- streaming" not in md  # no gap to a policy not asked for


def test_a_changed_single_prompt_is_measured_again(run_once, tmp_path):
    # the key once held no prompt: a new --prompt reused the old prompt's records
    out = tmp_path / "out"
    shutil.copytree(run_once[0], out)
    r = bench(out, "--suite", "fidelity", "--prompt", "Q: 4+4=?\nA:")
    assert r.returncode == 0, r.stderr
    assert "fidelity raas-48" in r.stderr and "dense reference" in r.stderr


def test_prompt_and_prompts_are_exclusive_and_a_bad_prompts_file_is_refused(tmp_path):
    from cli_testutil import assert_one_line_error

    pf = write_prompts(tmp_path / "p.jsonl", PROMPTS)
    r = bench_prompts(tmp_path / "o", pf, "--prompt", "x")
    assert_one_line_error(r, 4, "--prompt and --prompts are exclusive")
    (tmp_path / "bad.jsonl").write_text('{"id": "a"}\n')
    r = bench_prompts(tmp_path / "o", tmp_path / "bad.jsonl")
    assert_one_line_error(r, 4, "bad.jsonl:1")
    # one prompt too long for a budget: refused before any reference is made, naming the prompt
    long = write_prompts(tmp_path / "long.jsonl", [PROMPTS[0], {"id": "long", "prompt": "word " * 40}])
    r = bench_prompts(tmp_path / "o", long)
    assert_one_line_error(r, 3, "fidelity prompt 'long'", "budgets of at least")
    assert not list((tmp_path / "o").glob("fidelity-ref-*"))
