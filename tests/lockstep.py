"""One check shared by the policy tests: a policy engine and a dense engine, fed the same
prompt and then the same greedy tokens, give bit-identical logits at every step."""

from __future__ import annotations

import numpy as np


def assert_bit_identical_decode(eng, dense, prompt: list[int], steps: int) -> None:
    """Prefill both with `prompt`, then decode `steps` tokens greedily (dense's choice) in lockstep."""
    eng.prefill(prompt)
    dense.prefill(prompt)
    assert np.array_equal(eng.logits(), dense.logits())
    for _ in range(steps):
        tok = int(np.argmax(dense.logits()))
        eng.decode_one_token(tok)
        dense.decode_one_token(tok)
        assert np.array_equal(eng.logits(), dense.logits())
