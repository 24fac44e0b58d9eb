"""RoPE under an evicting policy: the context is sized to the budget while
positions keep growing, so RoPE must not depend on the context size. LongRoPE
(phi3 family) picks long or short factors by context size; an evicting policy
picks as dense does at the model's default (training) context."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_gguf import write_arch

from raas_local.engine import Engine
from raas_local.policies import CachePolicy


@pytest.fixture(scope="module")
def phi3(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "tiny-phi3.gguf"
    shape = write_arch(path, "phi3")
    assert 128 < shape.n_ctx_orig < shape.n_ctx_train  # budget-sized: short; default: long
    return path


def _run(path, policy, n_ctx, tokens):
    eng = Engine(path, policy=policy, n_ctx=n_ctx, n_threads=2)
    eng.prefill(tokens[:20])
    out = [eng.logits()]
    for t in tokens[20:]:
        eng.decode_one_token(t)
        out.append(eng.logits())
    eng.close()
    return np.stack(out)


@pytest.mark.parametrize("kind", ["raas", "streaming", "h2o"])
def test_longrope_factors_match_dense_at_its_default_context(phi3, kind):
    tokens = [5 + i % 13 for i in range(80)]
    dense = _run(phi3, CachePolicy(kind="dense"), None, tokens)  # 8192 cells > 512: long factors
    evicting = _run(phi3, CachePolicy(kind=kind, budget=128, page_size=16), 128, tokens)  # no eviction yet
    assert np.array_equal(evicting, dense)
    # not vacuous: a dense context of 128 cells picks the short factors and moves the logits
    short = _run(phi3, CachePolicy(kind="dense"), 128, tokens)
    assert np.abs(short - dense).max() > 1e-2
