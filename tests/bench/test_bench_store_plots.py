"""results.json bookkeeping and the plots, on synthetic records (no model needed)."""

from __future__ import annotations

import json

from raas_local.bench.store import Store, key

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def rec(**kw):
    return {**dict(suite="speed", model="embedded", policy="raas", budget=512, page_size=16, length=256), **kw}


def test_store_keys_replace_persist_and_force(tmp_path):
    p = tmp_path / "results.json"
    s = Store(p)
    s.add(rec(tok_per_s=1.0))
    s.add(rec(tok_per_s=2.0))  # same key: replaced, not duplicated
    s.add(rec(page_size=8, tok_per_s=3.0))
    assert len(json.loads(p.read_text())) == 2  # page size is part of the key
    k = key(rec())
    assert Store(p).has(k) and Store(p).get(k)["tok_per_s"] == 2.0
    assert not Store(p).has(key(rec(model="other")))
    # --force: nothing counts as done until measured again in this run
    forced = Store(p, force=True)
    assert not forced.has(k)
    forced.add(rec(tok_per_s=4.0))
    assert forced.has(k) and len(forced.records) == 2
    # records from before model and page size were keyed never match a new request
    old = {x: v for x, v in rec().items() if x not in ("model", "page_size")}
    assert key(old) != k


def test_plots_write_valid_pngs(tmp_path):
    from raas_local.bench import fidelity, memory, speed

    speeds = [rec(policy=p, budget=b, length=n, tok_per_s=50.0 / (1 + (n / 1000 if p == "dense" else 0.3)),
                 kv_cells=min(n, b or n), kv_bytes=min(n, b or n) * 23040)
             for p, b in (("dense", None), ("raas", 512), ("streaming", 512)) for n in (256, 512, 2048)]
    fidelities = [rec(suite="fidelity", policy="dense", budget=None, length=512, top1_agreement=1.0, mean_kl=0.0)]
    fidelities += [rec(suite="fidelity", policy=p, budget=b, length=512, top1_agreement=1 - 8 / b, mean_kl=4 / b)
                 for p in ("raas", "h2o") for b in (64, 128, 256)]
    speed.plot(speeds, tmp_path / "speed.png")
    memory.plot(speeds, tmp_path / "memory.png")
    fidelity.plot(fidelities, tmp_path / "fidelity.png")
    for name in ("speed.png", "memory.png", "fidelity.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC


def test_checks_hold_evicting_policies_to_their_budget_and_quest_to_every_token():
    from raas_local.bench import memory

    ok = [rec(suite="memory", policy="dense", budget=None, length=2048, kv_cells=2048),
          rec(suite="memory", policy="raas", budget=512, length=2048, kv_cells=512),
          rec(suite="memory", policy="quest", budget=512, length=2048, kv_cells=2048)]
    assert memory.checks(ok) == ["met: kv_cells <= budget for every evicting policy and length",
                                        "met: dense and quest hold every token (kv_cells == length)"]
    bad = [rec(suite="memory", policy="h2o", budget=512, length=2048, kv_cells=513),
           rec(suite="memory", policy="quest", budget=512, length=2048, kv_cells=512)]
    assert memory.checks(bad) == ["MISSED: kv_cells > budget in 1 records",
                                         "MISSED: dense or quest kv_cells != length in 1 records"]


def test_accuracy_table_and_plot(tmp_path):
    from raas_local.bench import accuracy

    recs = [rec(suite="accuracy", policy="dense", budget=None, length=256, accuracy=0.5, correct=21, n=42, answered=40,
                mean_generated_tokens=200.0, peak_kv_cells=300, evictions=0, tok_per_s=70.0)]
    recs += [rec(suite="accuracy", policy=p, budget=b, length=256, accuracy=b / 1024, correct=b * 42 // 1024, n=42,
                 answered=42, mean_generated_tokens=210.0, peak_kv_cells=b, evictions=3, tok_per_s=None)
             for p in ("raas", "quest") for b in (256, 512)]
    table = accuracy.table(recs).splitlines()
    assert table[2] == "| dense | all | 50.0% | 21 / 42 | 40 | 200 | 300 | 0 | 70.0 |"
    assert table[3] == "| quest | 256 | 25.0% | 10 / 42 | 42 | 210 | 256 | 3 | - |"
    assert len(table) == 2 + 5
    accuracy.plot(recs, tmp_path / "accuracy.png")
    assert (tmp_path / "accuracy.png").read_bytes()[:8] == PNG_MAGIC


def test_a_corrupt_results_file_is_a_one_line_error_naming_it_and_is_left_as_is(tmp_path):
    import subprocess
    import sys

    from raas_local.errors import InputError
    from cli_testutil import assert_one_line_error

    for text in ('[{"suite": "memory", "policy": "raas"', "{}", "\xff\xfe not json"):
        out = tmp_path / "b"
        out.mkdir(exist_ok=True)
        results = out / "results.json"
        results.write_text(text, encoding="latin-1")
        r = subprocess.run([sys.executable, "-m", "raas_local.cli", "bench", "--suite", "memory", "--lengths", "64",
                            "--policies", "dense", "-o", str(out)], capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL)
        assert_one_line_error(r, InputError.exit_code, str(results))
        assert results.read_text(encoding="latin-1") == text  # the user's file is not overwritten
