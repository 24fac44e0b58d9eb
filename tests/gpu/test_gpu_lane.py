"""The GPU lane: the CPU suite's checks with every layer offloaded, flash attention on and off.

- raas vs dense: bit-identical under the budget, equal to dense + seq_rm after
  evictions (tests/policies/test_raas_vs_dense.py);
- scores and logits vs the PyTorch reference, raas and quest
  (tests/policies/test_attention_scores_torch.py, test_quest_torch.py) with the
  same tolerances as on the CPU: with TF32 off (conftest) the GPU computes in
  f32 like the CPU, and only the order of the sums and the fast-math exp and
  division differ, ~1e-6 relative, two decades under the 1e-4 tolerance;
  the flash-attention runs rely, as on the CPU, on the quiet attention output
  that keeps f16 rounding out of the residual stream. The model for the scores
  has 64-wide heads, a size CUDA flash attention has kernels for;
- every evicting kind decodes 2,000 tokens at budget 256 as its plain-Python
  reference says, cells <= budget at every step; quest and dense keep every
  cell (tests/policies/test_policies_match_reference.py);
- a decode step's graph has no more scheduler splits than dense's: no op of a
  policy falls back to the CPU, and quest on the GPU runs without flash
  attention (CUDA flash attention has no per-head mask).
"""

from __future__ import annotations

import ctypes
import re

import llama_cpp
import numpy as np
import pytest

from policies.test_attention_scores_torch import check_scores_and_logits
from policies.test_policies_match_reference import run_long_chain
from policies.test_quest_torch import check_quest_matches_pytorch, tiny_llama4
from policies.test_raas_vs_dense import check_bit_identical_under_budget, check_evictions_equal_dense_with_seq_rm
from raas_local.engine import Engine
from raas_local.policies import KINDS, CachePolicy

pytestmark = pytest.mark.gpu

FLASH = pytest.mark.parametrize("flash_attn", [False, True], ids=["fa-off", "fa-on"])
PROMPT = "Question: A train travels 60 km in 1.5 hours. What is its average speed? Let's think step by step.\n"


@FLASH
@pytest.mark.parametrize("kind", ["raas", "quest"])
def test_under_budget_bit_identical_to_dense(ngl, kind, flash_attn):
    check_bit_identical_under_budget(kind, n_gpu_layers=ngl, flash_attn=flash_attn)


@FLASH
def test_after_evictions_equal_to_dense_with_seq_rm(ngl, flash_attn):
    check_evictions_equal_dense_with_seq_rm(n_gpu_layers=ngl, flash_attn=flash_attn)


@pytest.fixture(scope="module")
def wide_tiny_llama(tmp_path_factory):
    """Two tiny f32 llamas with 64-wide heads: plain, and with the quiet attention output for flash attention."""
    from tiny_gguf import TinyConfig, write_llama

    out = {}
    # 8 times wider than the CPU test's model (tests/conftest.py): Q and K weights scaled so that
    # q.k / sqrt(64) spreads alike, and the quiet output 8 times quieter (V and the output
    # projection are each sqrt(8) times wider), so the attention adds as little to the residual
    for flash_attn, attn_out in ((False, 0.2), (True, 1e-3 / 8)):
        path = tmp_path_factory.mktemp("models") / f"tiny-llama-hd64-{attn_out}.gguf"
        out[flash_attn] = path, write_llama(path, TinyConfig(n_embd=256, n_head=4, n_head_kv=2, qk_scale=0.4 * (32 / 256) ** 0.5,
                                                             attn_out_scale=attn_out))
    return out


@FLASH
def test_scores_and_logits_match_pytorch(ngl, wide_tiny_llama, flash_attn):
    path, cfg = wide_tiny_llama[flash_attn]
    check_scores_and_logits(path, cfg, flash_attn, n_gpu_layers=ngl)


@FLASH
def test_quest_matches_pytorch(ngl, tmp_path_factory, flash_attn):
    path, cfg = tiny_llama4(tmp_path_factory, 1e-3 if flash_attn else 0.2)
    check_quest_matches_pytorch(path, cfg, flash_attn, n_gpu_layers=ngl)


@pytest.mark.slow
@FLASH
@pytest.mark.parametrize("kind", sorted(k for k, cls in KINDS.items() if cls.evicts))
def test_evicting_kind_decodes_2000_tokens_within_budget(ngl, kind, flash_attn):
    run_long_chain(kind, 256, 2000, n_gpu_layers=ngl, flash_attn=flash_attn)


@pytest.mark.slow
@FLASH
@pytest.mark.parametrize("kind", sorted(k for k, cls in KINDS.items() if not cls.evicts))
def test_non_evicting_kind_decodes_2000_tokens_keeping_every_cell(ngl, kind, flash_attn):
    eng = Engine(policy=CachePolicy(kind=kind, budget=256), n_gpu_layers=ngl, flash_attn=flash_attn, n_ctx=4096)
    tokens = eng.tokenize(PROMPT)
    eng.prefill(tokens, pin=True)
    for _ in range(2000):
        eng.decode_one_token(int(np.argmax(eng.logits())))
    assert np.isfinite(eng.logits()).all()
    s = eng.cache_stats()
    assert s.evictions == 0 and s.used == len(tokens) + 2000
    eng.close()


# -- scheduler splits ---------------------------------------------------------


class SchedLog:
    """The scheduler's splits per graph, read from ggml's log with GGML_SCHED_DEBUG=1.

    ggml-backend.cpp logs "## SPLIT #i: <backend> # <n> inputs" for each split
    each time it splits a graph; the variable is read when a context is made.
    """

    SPLIT = re.compile(r"## SPLIT #(\d+): (\S+)")

    def __init__(self):
        self.graphs: list[list[str]] = []
        self._cb = llama_cpp.llama_log_callback(self._on_log)

    def _on_log(self, level, text, user_data):
        m = self.SPLIT.search((text or b"").decode("utf-8", "replace"))
        if m:
            if m.group(1) == "0":
                self.graphs.append([])
            if self.graphs:
                self.graphs[-1].append(m.group(2))

    def __enter__(self):
        llama_cpp.llama_log_set(self._cb, ctypes.c_void_p(0))
        return self

    def __exit__(self, *exc):
        from llama_cpp import _logger

        llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))


def decode_graph_splits(log: SchedLog, policy: CachePolicy, ngl: int, flash_attn: bool, steps: int = 100) -> list[list[str]]:
    """The split backends of every graph the scheduler split while decoding `steps` tokens."""
    eng = Engine(policy=policy, n_gpu_layers=ngl, flash_attn=flash_attn, n_ctx=512)
    tokens = eng.tokenize(PROMPT)
    eng.prefill(tokens, pin=True)
    del log.graphs[:]
    for _ in range(steps):  # at budget 96 the evicting kinds evict within these steps
        eng.decode_one_token(int(np.argmax(eng.logits())))
    graphs = list(log.graphs)
    evictions = eng.cache_stats().evictions
    eng.close()
    assert graphs, "the scheduler logged no split: GGML_SCHED_DEBUG was not read"
    assert evictions > 0 or not policy.evicts
    return graphs


@FLASH
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_decode_graph_has_no_more_splits_than_dense(ngl, kind, flash_attn, monkeypatch):
    monkeypatch.setenv("GGML_SCHED_DEBUG", "1")
    with SchedLog() as log:
        dense = decode_graph_splits(log, CachePolicy(kind="dense"), ngl, flash_attn)
        policy = decode_graph_splits(log, CachePolicy(kind=kind, budget=96, page_size=16), ngl, flash_attn)
    most_dense = max(len(g) for g in dense)
    assert max(len(g) for g in policy) <= most_dense, f"{kind}: {policy} vs dense {dense}"
    backends = {b for g in policy for b in g}
    assert any(b.startswith("CUDA") for b in backends) if ngl else backends == {"CPU"}


def test_quest_with_flash_attention_runs_without_it_on_the_gpu(ngl):
    """-fa -ngl 99: quest drops flash attention where layers are on a GPU, also when switched to."""
    on_gpu = ngl > 0
    quest = CachePolicy(kind="quest", budget=64, page_size=16)
    eng = Engine(policy=CachePolicy(kind="dense"), n_gpu_layers=ngl, flash_attn=True, n_ctx=512)
    assert eng.flash_attn_used
    eng.set_policy(quest)
    assert eng.flash_attn_used is not on_gpu
    want = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED if on_gpu else llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
    assert eng.llm.context_params.flash_attn_type == want
    eng.set_policy(CachePolicy(kind="raas", budget=64))
    assert eng.flash_attn_used and eng.llm.context_params.flash_attn_type == llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
    eng.close()
