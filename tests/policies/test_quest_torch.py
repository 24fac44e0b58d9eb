"""quest: llama.cpp's masked attention equals a PyTorch forward pass that attends
only the pages the plain-Python Quest reference selects, head by head.

A 4-layer tiny f32 llama (the first two layers stay dense, as in Quest) with an
f32 KV cache; 8-cell pages and a budget of 4 pages, so from the fifth page on
every head of layers 2 and 3 drops pages. If llama.cpp attended any other cell
than the reference (more than the budget, or other pages), the logits would
move far beyond the tolerance: the test also checks that narrowing the
attention moves the logits by much more than the tolerance.

With flash attention on, llama.cpp rounds Q, K, V and the V accumulation to
f16 (see test_attention_scores_torch); the model's attention output projection
is then scaled down (1e-3) so that the residual stream, and with it every
query and the pages it selects, stays f32-exact.
"""

from __future__ import annotations

import numpy as np
import pytest

from raas_local.engine import Engine
from raas_local.policies import CachePolicy
from reference.quest_policy import select
from reference.torch_llama import TorchLlama

BUDGET, PAGE, DENSE_LAYERS = 32, 8, 2


def tiny_llama4(tmp_path_factory, attn_out_scale):
    from tiny_gguf import TinyConfig, write_llama

    path = tmp_path_factory.mktemp("models") / "tiny-llama-4l.gguf"
    return path, write_llama(path, TinyConfig(n_layer=4, seed=3, attn_out_scale=attn_out_scale))


class Narrow:
    """The reference's selection, with the smallest bound gap at a cut (ties would make the test ambiguous)."""

    def __init__(self, pos: int):
        self.pos, self.min_gap, self.narrowed = pos, float("inf"), 0

    def __call__(self, il, head, q, keys):
        if il < DENSE_LAYERS:
            return list(keys)
        cells, gap = select(q.tolist(), {p: k.tolist() for p, k in keys.items()}, self.pos, BUDGET, PAGE)
        assert len(cells) <= BUDGET
        self.min_gap = min(self.min_gap, gap)
        self.narrowed += len(cells) < len(keys)
        return cells


@pytest.mark.parametrize("flash_attn", [False, True])
def test_quest_matches_pytorch(tmp_path_factory, flash_attn):
    path, cfg = tiny_llama4(tmp_path_factory, 1e-3 if flash_attn else 0.2)
    check_quest_matches_pytorch(path, cfg, flash_attn)


def check_quest_matches_pytorch(path, cfg, flash_attn: bool, **engine_kw) -> None:
    """engine_kw (n_gpu_layers) lets the GPU lane run the same check."""
    eng = Engine(path, policy=CachePolicy(kind="quest", budget=BUDGET, page_size=PAGE), kv_type="f32", flash_attn=flash_attn,
                 n_ctx=256, **engine_kw)
    ref, dense = TorchLlama(cfg), TorchLlama(cfg)
    tol = 1e-3 if flash_attn else 1e-4
    rng = np.random.default_rng(11)
    prompt = [int(t) for t in rng.integers(3, 270, 6)]

    eng.prefill(prompt, pin=True)
    for p, t in enumerate(prompt):
        logits, _ = ref.step(t, p, list(range(p + 1)))
        dense.step(t, p, list(range(p + 1)))
    np.testing.assert_allclose(eng.logits(), logits.numpy(), rtol=1e-4, atol=tol)

    narrowed, moved = 0, 0.0
    for _ in range(100):
        tok = int(rng.integers(3, 270))
        pos = eng.position
        eng.decode_one_token(tok)
        narrow = Narrow(pos)
        logits, _ = ref.step(tok, pos, list(range(pos + 1)), narrow=narrow)
        # a near-tie at the cut could go either way in f32 vs f64
        assert narrow.min_gap > 1e-3, f"ambiguous cut at position {pos}: gap {narrow.min_gap}"
        np.testing.assert_allclose(eng.logits(), logits.numpy(), rtol=1e-4, atol=tol, err_msg=f"position {pos}")
        dense_logits, _ = dense.step(tok, pos, list(range(pos + 1)))
        moved = max(moved, float(np.abs(dense_logits.numpy() - logits.numpy()).max()))
        narrowed += narrow.narrowed
        # nothing is evicted: memory grows with the sequence
        assert eng.cache_stats().used == pos + 1
    assert narrowed > 0
    assert moved > 50 * tol, f"narrowing moved the logits by only {moved}"
    eng.close()
