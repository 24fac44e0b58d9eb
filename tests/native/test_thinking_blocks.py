"""A finished thinking block leaves the cache, whether the model opened it or
the chat template did (DeepSeek-R1 distills and QwQ end the generation prompt
with `<think>`), and the newest position always stays so the next turn decodes.

The tiny qwen2-shaped model carries an R1-style template and an output bias
that makes greedy decoding emit `</think>` at every step, so the block's end
is known exactly."""

from __future__ import annotations

import pytest
from tiny_gguf import ArchShape, write_arch

from raas_local.engine import Engine
from raas_local.policies import CachePolicy

R1_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}<|User|>{{ m['content'] }}"
    "{% else %}<|Assistant|>{{ m['content'].split('</think>')[-1] }}</s>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|Assistant|><think>\n{% endif %}"
)


@pytest.fixture(scope="module")
def r1_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "tiny-r1.gguf"
    shape = ArchShape("qwen2", n_head=12, n_head_kv=2, head_dim=4, qkv_bias=True,
                      special=("<think>", "</think>"), favour="</think>")
    write_arch(path, shape, chat_template=R1_TEMPLATE)
    return path


@pytest.mark.parametrize("kind", ["raas", "dense"])
def test_a_block_opened_by_the_template_leaves_the_cache(r1_model, kind):
    eng = Engine(r1_model, policy=CachePolicy(kind=kind, budget=256), n_ctx=256, n_threads=2)
    msgs = [{"role": "user", "content": "the cat"}]
    prompt = eng.render(msgs)
    assert prompt.endswith("<|Assistant|><think>\n")
    n_prompt = len(eng.tokenize(prompt))
    text = "".join(ev.text for ev in eng.generate(msgs, max_tokens=3, temperature=0))
    assert text == "</think>" * 3
    used = eng.cache_stats().used
    # "<think>", "\n" of the prompt and the first generated token (the close tag) are gone
    assert used == n_prompt + 3 - 3, (used, n_prompt)
    # the next turn continues from the cache and decodes
    msgs += [{"role": "assistant", "content": text}, {"role": "user", "content": "the dog"}]
    text2 = "".join(ev.text for ev in eng.generate(msgs, max_tokens=2, temperature=0))
    assert text2 == "</think>" * 2
    eng.close()


def test_a_block_ending_at_the_newest_position_keeps_that_position(r1_model):
    eng = Engine(r1_model, policy=CachePolicy(kind="raas", budget=256), n_ctx=256, n_threads=2)
    msgs = [{"role": "user", "content": "the cat"}]
    list(eng.generate(msgs, max_tokens=1, temperature=0))  # the only token closes the block
    s = eng.cache_stats()
    assert s.newest_pos == eng.position - 1
    msgs += [{"role": "assistant", "content": "</think>"}, {"role": "user", "content": "the dog"}]
    text2 = "".join(ev.text for ev in eng.generate(msgs, max_tokens=2, temperature=0))
    assert text2 == "</think>" * 2
    eng.close()
