"""The policy's score ops must not grow llama.cpp's compute buffer.

Each layer's contribution to the scores is consumed in that layer, so no
layer's softmax (n_kv x n_ubatch x n_head floats) outlives it. On a model with
many layers and heads, the scheduler's compute buffer after a full-ubatch
prefill and a decode step stays within 10% of dense's, flash attention on and
off (sizes, not time)."""

from __future__ import annotations

import pytest
from tiny_gguf import TinyConfig, write_llama

from raas_local import native
from raas_local.engine import Engine
from raas_local.policies import CachePolicy

N_CTX = 512


@pytest.fixture(scope="module")
def many_heads(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "many-layers-heads.gguf"
    write_llama(path, TinyConfig(n_layer=12, n_embd=128, n_head=16, n_head_kv=4, n_ff=128))
    return path


def _compute_bytes(path, policy: CachePolicy, fa: bool) -> int:
    eng = Engine(path, policy=policy, n_ctx=N_CTX, n_batch=N_CTX, flash_attn=fa, n_threads=2)
    eng.prefill([5 + i % 11 for i in range(N_CTX - 40)])  # one full ubatch over ~all cells
    eng.decode_one_token(5)
    size = native.compute_buffer_size(eng.ctx)
    eng.close()
    return size


@pytest.mark.parametrize("fa", [False, True], ids=["nofa", "fa"])
@pytest.mark.parametrize("kind", ["raas", "h2o", "streaming", "quest"])
def test_compute_buffer_with_a_policy_stays_within_10_percent_of_dense(many_heads, kind, fa):
    dense = _compute_bytes(many_heads, CachePolicy(kind="dense"), fa)
    other = _compute_bytes(many_heads, CachePolicy(kind=kind, budget=N_CTX), fa)
    if not fa:  # one layer's softmax alone is n_kv * n_ubatch * n_head * 4 bytes = 16 MiB here
        assert dense > 16 << 20
    assert other <= 1.1 * dense, f"{kind}: {other / 2**20:.1f} MiB vs dense {dense / 2**20:.1f} MiB"
