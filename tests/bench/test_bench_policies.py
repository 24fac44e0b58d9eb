"""Every registered policy kind through the memory and fidelity suites' measuring functions.

A kind that the loaded native library does not implement fails here with the
library's own reason: a kind is done when its C++ is in the build."""

from __future__ import annotations

import pytest

from raas_local.policies import KINDS, CachePolicy

EVICTING = sorted(k for k in KINDS if CachePolicy(kind=k).evicts)


@pytest.mark.parametrize("kind", EVICTING)
def test_memory_keeps_every_evicting_policy_within_its_budget(kind):
    from raas_local.bench.memory import measure_memory

    r = measure_memory(None, CachePolicy(kind=kind, budget=64), 300, n_threads=1)
    assert r.budget == 64 and 0 < r.kv_cells <= 64 and r.evictions > 0
    assert r.kv_bytes_dense == 300 * (r.kv_bytes // r.kv_cells)
    assert r.compute_bytes > 0  # the prefill peak beside the cache


def test_memory_table_lists_each_policy_compute_buffer():
    from raas_local.bench.memory import compute_table

    recs = [dict(policy="dense", budget=None, length=1000, compute_bytes=3 << 20),
            dict(policy="raas", budget=512, length=1000, compute_bytes=1 << 20)]
    assert compute_table(recs).splitlines()[2] == "| 1000 | 3.0 | 1.0 |"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    from raas_local.bench.fidelity import DenseReference
    from raas_local.engine import Engine

    prompt = "Q: 2+3=?\nA:"
    ref = DenseReference(tmp_path_factory.mktemp("ref"), 40)
    with Engine(policy=CachePolicy(kind="dense"), n_ctx=128, n_threads=1) as eng:
        ref.generate(eng, "embedded", prompt, eng.tokenize(prompt))
    return ref


def test_reference_reloads_only_for_the_same_model_prompt_and_length(reference):
    from raas_local.bench.fidelity import DenseReference

    again = DenseReference(reference.folder, 40)
    assert again.load("embedded", "Q: 2+3=?\nA:")
    assert again.chain == reference.chain and again.logprobs.shape == reference.logprobs.shape
    assert not DenseReference(reference.folder, 40).load("other.gguf", "Q: 2+3=?\nA:")
    assert not DenseReference(reference.folder, 40).load("embedded", "another prompt")
    assert not DenseReference(reference.folder, 41).load("embedded", "Q: 2+3=?\nA:")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_with_room_for_the_whole_chain_matches_dense_exactly(kind, reference):
    from raas_local.bench.fidelity import teacher_force

    r = teacher_force(None, CachePolicy(kind=kind, budget=128), reference, n_threads=1)
    assert r.length == 40 and r.evictions == 0
    assert r.top1_agreement == 1.0 and r.mean_kl == 0.0


@pytest.mark.parametrize("kind", EVICTING)
def test_every_evicting_kind_under_pressure_gives_valid_figures(kind, reference):
    from raas_local.bench.fidelity import teacher_force

    r = teacher_force(None, CachePolicy(kind=kind, budget=48), reference, n_threads=1)
    assert r.evictions > 0 and r.kv_cells <= 48
    assert 0.0 <= r.top1_agreement <= 1.0 and r.mean_kl >= 0.0


def test_quest_under_pressure_keeps_every_cell_and_departs_from_dense(reference):
    from raas_local.bench.fidelity import teacher_force

    # 2 pages of attention over a prompt and a 40-token chain of 3 pages and more
    r = teacher_force(None, CachePolicy(kind="quest", budget=32), reference, n_threads=1)
    assert r.evictions == 0 and r.kv_cells == len(reference.prompt) + 40
    assert r.mean_kl > 0.0 and 0.0 <= r.top1_agreement <= 1.0
