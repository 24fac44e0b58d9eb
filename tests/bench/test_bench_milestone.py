"""The milestone-recall suite (bench/milestone.py): the seeded chains, the scoring on a hand-made case,
and the suite end to end on the embedded model (records, identity with room for the chain, resume, outputs)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from raas_local.bench import milestone as m

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tok():
    from raas_local.engine import Engine
    from raas_local.policies import make

    eng = Engine(policy=make("dense"), n_ctx=256, n_threads=1)
    yield eng
    eng.close()


def test_chains_are_seeded_and_every_use_copies_its_value_at_the_stated_distance(tok):
    a, b, c = (m.make_chain(tok.tokenize, s, 512) for s in (0, 0, 1))
    assert a.body == b.body and a.uses == b.uses and a.body != c.body
    assert len(a.body) == 512 and a.prompt == tok.tokenize(m.PROMPT)
    # digits are single tokens after a space token, as the generator assumes
    assert tok.tokenize(" 482") == tok.tokenize(" ") + tok.tokenize("482") and len(tok.tokenize("482")) == 3
    assert {u.kind for u in a.uses} == set(m.KINDS)
    text = b"".join(tok.piece(t) for t in a.body).decode()
    names_set = re.findall(r"Let (\w+) =", text)
    assert len(names_set) == len(set(names_set))  # one name per value
    values_set = re.findall(r"Let \w+ = (\d+)\.", text)
    assert len(values_set) == len(set(values_set))  # and one value per name
    for u in a.uses:
        head = tok.tokenize(f" {u.name} =") + tok.tokenize(" ")
        digits = tok.tokenize(u.value)
        assert a.body[u.start - len(head):u.start + 3] == head + digits
        # the previous mention of the name is `distance` tokens back, and none lies between
        prev = u.start - u.distance
        assert a.body[prev - len(head):prev + 3] == head + digits
        between = a.body[prev + 3:u.start - len(head)]
        assert not any(between[i:i + len(head)] == head for i in range(len(between)))
    assert len(a.steps) == 3 * len(a.uses)


def test_score_counts_a_hand_made_case():
    uses = [m.Use(start=1, value="123", name="a", kind="once", distance=10),
            m.Use(start=5, value="456", name="b", kind="lemma-late", distance=300)]
    # body positions 1-3 hold 1 2 3 and 5-7 hold 4 5 6 (token ids = digits here)
    chain = m.Chain(0, [9], [0, 1, 2, 3, 0, 4, 5, 6], uses)
    dense = [1, 2, 3, 4, 5, 0]      # dense gets the first use, misses the second's last digit
    pol = [1, 2, 7, 4, 5, 0]        # the policy misses the first, agrees with dense on the second
    s = m.score(chain, pol, dense)
    assert (s["uses"], s["correct"], s["dense_correct"], s["recalled"], s["agree"]) == (2, 0, 1, 0, 1)
    assert s["by_bucket"]["0-31"] == [1, 1, 0, 0, 0] and s["by_bucket"]["256-511"] == [1, 0, 0, 1, 0]
    assert s["by_kind"]["lemma-late"] == [1, 0, 0, 1, 0] and s["by_kind"]["lemma"] == [0] * 5
    assert m.score(chain, dense, dense)["recalled"] == 1
    assert [m.bucket(d) for d in (0, 31, 32, 1023, 1024, 5000)] == ["0-31", "0-31", "32-63", "512-1023", "1024+", "1024+"]


ARGS = ["--suite", "milestone", "--policies", "dense,raas,streaming", "--chain", "160", "--seeds", "2",
        "--budgets", "48,192", "-t", "1"]


def bench(out, *extra):
    cmd = [sys.executable, "-m", "raas_local.cli", "bench", *ARGS, *extra, "-o", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def run_once(tmp_path_factory):
    out = tmp_path_factory.mktemp("milestone") / "out"
    r = bench(out)
    assert r.returncode == 0, r.stderr
    return out, r


def test_records_per_seed_and_identity_with_room_for_the_chain(run_once):
    out, _ = run_once
    recs = [r for r in json.loads((out / "results.json").read_text()) if r["suite"] == "milestone"]
    assert {(r["policy"], r["budget"], r["prompt"]) for r in recs} == (
        {("dense", None, f"seed{s}") for s in (0, 1)}
        | {(p, b, f"seed{s}") for p in ("raas", "streaming") for b in (48, 192) for s in (0, 1)})
    for s in ("seed0", "seed1"):
        dense = next(r for r in recs if r["policy"] == "dense" and r["prompt"] == s)
        assert dense["uses"] >= 3 and dense["recalled"] == dense["dense_correct"] > 0
        for r in (x for x in recs if x["prompt"] == s and x["policy"] != "dense"):
            assert r["uses"] == dense["uses"] and len(r["argmax"]) == 3 * r["uses"]
            if r["budget"] == 192:  # prompt + chain fit: nothing evicted, dense's argmax exactly
                assert r["evictions"] == 0 and r["argmax"] == dense["argmax"] and r["agree"] == r["uses"]
            else:
                assert r["evictions"] > 0 and r["kv_cells"] <= 48
                assert 0 <= r["recalled"] <= r["dense_correct"]


def test_tables_plot_and_resume(run_once, tmp_path):
    out, r = run_once
    md = (out / "milestone.md").read_text()
    assert md.startswith("## Milestone recall") and "recall at 0-31" in md and "recall (lemma-late)" in md
    assert "| raas | 192 | 1.000 |" in md and "| dense (copied right, of uses) | all |" in md
    assert "milestone.png" in md and (out / "milestone.png").read_bytes()[:8] == PNG_MAGIC
    assert "| raas | 48 |" in r.stdout
    # the table's overall recall is the sum over the two chains
    recs = [x for x in json.loads((out / "results.json").read_text()) if x["suite"] == "milestone"]
    s48 = [x for x in recs if x["policy"] == "streaming" and x["budget"] == 48]
    want = sum(x["recalled"] for x in s48) / sum(x["dense_correct"] for x in s48)
    assert f"| streaming | 48 | {want:.3f} |" in md
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    again = bench(copy)
    assert again.returncode == 0, again.stderr
    assert "milestone raas" not in again.stderr and "milestone dense" not in again.stderr
    # a third seed: only its chain is measured
    third = bench(copy, "--seeds", "3")
    assert third.returncode == 0, third.stderr
    measured = [ln for ln in third.stderr.splitlines() if ln.startswith("milestone ") and ("recall" in ln or "uses" in ln)]
    assert len(measured) == 5 and all("[seed 2]" in ln for ln in measured), measured
