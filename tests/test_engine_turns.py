"""A chat's later turns reuse the cache: only the new text is prefilled, and the
model then sees exactly what a fresh dense engine sees when it is given the whole
rendered conversation (the embedded model's chat template).

The fresh engine decodes the tokens of the whole rendering in the same batches
as the chat did (each turn's prefill, then one token per generated token):
llama.cpp's sums depend on the batch shape (a Q4 model's logits move by ~0.9
between one batch and token-by-token), and with the same shape they must be
bit-identical, so a single token that differs from the rendering shows.
"""

from __future__ import annotations

import llama_cpp
import numpy as np
import pytest

from raas_local.engine import Engine
from raas_local.policies import CachePolicy

QUESTIONS = ["What is 2+3?", "And times 4?", "Say it in words."]


@pytest.fixture(scope="module")
def fresh():
    with Engine(policy=CachePolicy(kind="dense"), n_ctx=1024, n_threads=1) as eng:
        yield eng


def fresh_dense_logits(fresh, messages, batches: list[int]) -> tuple[np.ndarray, int]:
    """Logits of a dense engine emptied and fed the whole rendered conversation in these batch sizes, and its token count."""
    fresh.reset()
    tokens = fresh.tokenize(fresh.render(messages), add_bos=bool(llama_cpp.llama_vocab_get_add_bos(fresh.vocab)))
    at = 0
    for n in batches:
        fresh.prefill(tokens[at : at + n], pin=False)
        at += n
    assert at == len(tokens), f"the chat cached {at} tokens, the rendered conversation has {len(tokens)}"
    return fresh.logits(), len(tokens)


@pytest.mark.parametrize("kind", ["dense", "raas"])
def test_each_turn_prefills_only_its_text_and_sees_what_a_fresh_dense_engine_sees(kind, fresh):
    eng = Engine(policy=CachePolicy(kind=kind, budget=1024), n_ctx=1024, n_threads=1)
    messages: list[dict] = []
    batches: list[int] = []
    for i, question in enumerate(QUESTIONS):
        messages.append({"role": "user", "content": question})
        before = eng.position
        # max_tokens=0: prefill the turn and stop, so the logits are those of its last prompt token
        *_, last = eng.generate(messages, max_tokens=0, temperature=0.0)
        batches.append(last.stats.prompt_tokens)
        want, n_all = fresh_dense_logits(fresh, messages, batches)
        assert eng.position == n_all
        if i:
            assert last.stats.prompt_tokens == n_all - before < n_all  # only the new turn was prefilled
        assert np.array_equal(eng.logits(), want)

        *events, done = eng.generate(messages, max_tokens=8, temperature=0.0)
        assert done.stats.prompt_tokens == 0  # the question is in the cache already
        batches += [1] * done.stats.generated_tokens
        reply = "".join(ev.text for ev in [*events, done])
        assert reply
        messages.append({"role": "assistant", "content": reply})
    assert eng.cache_stats().evictions == 0
    eng.close()
