"""The graph llama.cpp reuses between decodes must be one built for the current
policy, and a graph with the policy's ops must fit llama.cpp's node limit."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
from tiny_gguf import ArchShape, TinyConfig, write_arch, write_llama

from raas_local import native
from raas_local.engine import Engine
from raas_local.policies import CachePolicy


def test_a_new_policy_never_runs_a_graph_built_for_an_old_one(tmp_path):
    path = tmp_path / "four-layers.gguf"
    write_llama(path, TinyConfig(n_layer=4))  # quest leaves the first two layers dense
    quest = Engine(path, policy=CachePolicy(kind="quest", budget=32, page_size=16), n_ctx=512, n_threads=2)
    dense = Engine(path, policy=CachePolicy(kind="dense"), n_ctx=512, n_threads=2)
    toks = [5 + i % 11 for i in range(300)]
    quest.prefill(toks)
    dense.prefill(toks)
    for t in (5, 6, 7):  # quest's mask is in the graph now: 19 pages, 2 attended
        quest.decode_one_token(t)
        dense.decode_one_token(t)
    assert not np.array_equal(quest.logits(), dense.logits())
    # the K and V written under quest's mask differ from dense's: drop them from both caches
    quest.truncate(len(toks))
    dense.truncate(len(toks))
    # two switches: the allocator hands the third policy object the first one's address
    native.set_policy(quest.ctx, native.KIND_RAAS, 512, 16, 0.5)
    native.set_policy(quest.ctx, native.KIND_DENSE, 512, 16, 0.5)
    for t in (8, 9, 10):
        quest.decode_one_token(t)
        dense.decode_one_token(t)
        assert np.array_equal(quest.logits(), dense.logits())
    quest.close()
    dense.close()


def test_quest_with_flash_attention_fits_the_node_limit_of_a_deep_fused_qkv_model(tmp_path):
    # phi3's fused QKV gives few tensors per layer, and llama.cpp's node limit is 8 per tensor
    path = tmp_path / "deep-phi3.gguf"
    write_arch(path, ArchShape("phi3", n_head=4, n_head_kv=4, head_dim=8, n_embd=32, n_layer=48, n_ff=32,
                               fused_qkv=True, long_rope=True, n_ctx_train=4096, n_ctx_orig=512))
    code = textwrap.dedent(f"""
        from raas_local.engine import Engine
        from raas_local.policies import CachePolicy
        for kind in ("quest", "raas"):
            eng = Engine({str(path)!r}, policy=CachePolicy(kind=kind, budget=64, page_size=16), n_ctx=512,
                         flash_attn=True, n_threads=2)
            eng.prefill([5 + i % 11 for i in range(20)])
            for t in range(60):
                eng.decode_one_token(5 + t % 7)
            eng.close()
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-1500:]
