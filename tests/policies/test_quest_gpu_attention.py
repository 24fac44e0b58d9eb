"""Quest on a GPU runs without flash attention; every other case keeps what was asked.

The GPU lane (tests/gpu) checks the effect there (the context's flash
attention is off and the decode graph has no more scheduler splits than
dense's); here the decision itself, the engine's use of it on a machine
without a GPU, and the reason for it in the vendored ggml-cuda sources.
"""

from __future__ import annotations

import re
import tarfile

import llama_cpp
import pytest

from raas_local.engine import Engine, flash_attn_for
from raas_local.policies import KINDS, CachePolicy

# (kind, flash attention asked, layers on a GPU) -> flash attention used, where it is not what was asked
DROPPED = {("quest", True, True): False}


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("asked", [False, True])
@pytest.mark.parametrize("on_gpu", [False, True])
def test_only_quest_on_a_gpu_drops_flash_attention(kind, asked, on_gpu):
    assert flash_attn_for(CachePolicy(kind=kind), asked, on_gpu) is DROPPED.get((kind, asked, on_gpu), asked)


def test_without_a_gpu_quest_keeps_flash_attention_at_ngl_99(tiny_llama):
    # CPU flash attention takes the per-head mask (tests/policies/test_quest_torch.py)
    if llama_cpp.llama_supports_gpu_offload():
        pytest.skip("a GPU is here: tests/gpu checks quest with flash attention on it")
    eng = Engine(tiny_llama[0], policy=CachePolicy(kind="quest", budget=32, page_size=8), flash_attn=True,
                 n_gpu_layers=99, n_ctx=256)
    assert eng.flash_attn_used
    assert eng.llm.context_params.flash_attn_type == llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
    eng.close()


def _vendored(sdist, name: str) -> str:
    with tarfile.open(sdist) as tar:
        member = next(m for m in tar if m.name.endswith(f"vendor/llama.cpp/ggml/src/ggml-cuda/{name}"))
        return tar.extractfile(member).read().decode()


def test_the_reason_holds_in_the_vendored_ggml_cuda():
    """If a llama.cpp update gives CUDA flash attention per-head masks, this fails: drop the rule then."""
    from raas_local.paths import cache_home

    sdist = next(iter(sorted((cache_home() / "sdist").glob("llama_cpp_python-*.tar.gz"))), None)
    if sdist is None:
        pytest.skip("no llama-cpp-python sdist in the cache (make setup downloads it)")
    fattn = _vendored(sdist, "fattn.cu")
    # flash attention: a mask that differs per head (ne[2] != 1) has no kernel
    assert re.search(r"if \(mask && mask->ne\[2\] != 1\) \{\s*return BEST_FATTN_KERNEL_NONE;", fattn)
    # soft_max: the mask's row for head i02 is i02 % ne12, so a per-head mask is read per head
    softmax = _vendored(sdist, "softmax.cu")
    assert "const int64_t i12 = i02 % p.ne12;" in softmax
