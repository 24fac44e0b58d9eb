"""(b) llama.cpp's in-graph scores equal a PyTorch forward pass, flash attention on and off.

The tiny f32 llama model runs with an f32 KV cache at a budget small enough to
evict. Which positions stay cached is decided on the reference side too: the
plain-Python RaaS reference is fed the PyTorch model's scores (never the
engine's) and its cache is what the PyTorch model attends to, so the engine's
evictions, cached positions, page table, scores and logits must all agree with
two references that never read the engine's cache.

llama.cpp's CPU flash attention reads K and V as f16 and accumulates V*softmax
in an f16 buffer, so its attention *output* differs from f32 by ~1e-3. The
scores do not go through that path (they use f32 Q and K), but later layers see
the rounded output. With flash attention on, the model's attention output
projection is therefore scaled down (1e-3) so that the residual stream stays
f32-exact to ~1e-5 and the comparison at 1e-4 tests the score ops themselves.
"""

from __future__ import annotations

import numpy as np
import pytest

from raas_local.engine import Engine
from raas_local.policies import CachePolicy
from raas_local.policies.raas import RaasPolicy
from reference.raas_policy import RaasReference
from reference.torch_llama import TorchLlama


@pytest.fixture(scope="module")
def tiny_llama_quiet_attn(tmp_path_factory):
    from tiny_gguf import TinyConfig, write_llama

    path = tmp_path_factory.mktemp("models") / "tiny-llama-quiet.gguf"
    return path, write_llama(path, TinyConfig(attn_out_scale=1e-3))


# the shipped default, the paper setting, then the score's free choices (issue 13): max over heads, the
# first layer unscored
VARIANTS = {"default": {}, "paper": RaasPolicy.PAPER, "head_agg=max": {"head_agg": "max"}, "skip_layers=1": {"skip_layers": 1}}


@pytest.mark.parametrize("flash_attn", [False, True])
@pytest.mark.parametrize("variant", list(VARIANTS.values()), ids=list(VARIANTS))
def test_scores_and_logits_match_pytorch(request, flash_attn, variant):
    path, cfg = request.getfixturevalue("tiny_llama_quiet_attn" if flash_attn else "tiny_llama")
    check_scores_and_logits(path, cfg, flash_attn, variant)


def check_scores_and_logits(path, cfg, flash_attn: bool, variant: dict | None = None, **engine_kw) -> None:
    """engine_kw (n_gpu_layers) lets the GPU lane run the same check."""
    budget, page_size = 24, 4
    eng = Engine(path, policy=CachePolicy(kind="raas", budget=budget, page_size=page_size, **(variant or {})),
                 kv_type="f32", flash_attn=flash_attn, n_ctx=256, **engine_kw)
    ref = TorchLlama(cfg)
    policy = RaasReference.of(eng.policy)
    variant = {"head_agg": eng.policy.head_agg, "skip_layers": eng.policy.skip_layers}  # what shapes the scores
    # flash attention also rounds Q to f16 for the product: logits move by ~1e-4
    logit_tol = 1e-3 if flash_attn else 1e-4
    rng = np.random.default_rng(7)
    prompt = [int(t) for t in rng.integers(3, 270, 6)]

    eng.prefill(prompt, pin=True)
    policy.pin(0, len(prompt))
    policy.place(list(range(len(prompt))))
    for p, t in enumerate(prompt):
        logits, want = ref.step(t, p, list(range(p + 1)), **variant)
    np.testing.assert_allclose(eng.logits(), logits.numpy(), rtol=1e-4, atol=logit_tol)
    # a batch of several tokens scores its last one
    got = eng.last_scores()
    assert sorted(got) == list(range(len(prompt)))
    np.testing.assert_allclose([got[p] for p in sorted(got)], [want[p] for p in sorted(got)], atol=1e-4)

    evictions = 0
    for _ in range(40):
        tok = int(rng.integers(3, 270))
        pos = eng.position
        expected = policy.before_place(1)
        policy.place([pos])
        cached = sorted(policy.cached)
        logits, want = ref.step(tok, pos, cached, **variant)
        policy.observe(want)  # the reference policy sees PyTorch's scores only
        eng.decode_one_token(tok)
        assert eng.last_evicted() == expected
        evictions += len(expected)
        got = eng.last_scores()
        assert sorted(got) == cached, "the engine caches other positions than the reference policy"
        np.testing.assert_allclose([got[p] for p in cached], [want[p] for p in cached], atol=1e-4)
        np.testing.assert_allclose(eng.logits(), logits.numpy(), rtol=1e-4, atol=logit_tol)
        assert [(pg.first_pos, pg.last_pos, pg.ts) for pg in eng.page_table()] == policy.table()
        # summed over the heads and scored layers, each a distribution
        if variant.get("head_agg", "sum") == "sum":
            assert abs(sum(got.values()) - cfg.n_head * (cfg.n_layer - variant.get("skip_layers", 0))) < 1e-3
    assert evictions > 0
    eng.close()
