"""Bringing a cache to the state it has after N tokens (shared by the speed and memory suites).

Evicting policies get a short pinned prompt, then the rest as decode pages fed
in batches of a quarter budget, so the policy evicts as it goes and never holds
more than its budget; dense gets all N tokens as one pinned prompt (it keeps
every token anyway, and prefill is the fast way to get there).
"""

from __future__ import annotations

from raas_local.engine import Engine
from raas_local.policies import Policy

FILL_TEXT = (
    "Let x be the number of apples. Then 3x + 5 = 20, so 3x = 15 and x = 5. "
    "Check: 3 * 5 + 5 = 20. Next, consider the sum 1 + 2 + ... + n = n(n+1)/2; "
    "for n = 10 it is 55, for n = 100 it is 5050. "
)
PROMPT = "Solve step by step: what is the sum of the first 100 positive integers?\n"


def fill_tokens(engine: Engine, n: int) -> list[int]:
    base = engine.tokenize(FILL_TEXT)
    reps = n // len(base) + 1
    return (base * reps)[:n]


def dense_cells(length: int, extra: int = 0) -> int:
    """Context cells a dense engine needs to hold `length` tokens and `extra` more."""
    return length + extra + 64


def fill(engine: Engine, policy: Policy, length: int) -> None:
    """Put `length` tokens (PROMPT, then FILL_TEXT repeated) into the engine's cache."""
    prompt = engine.tokenize(PROMPT)
    rest = fill_tokens(engine, max(length - len(prompt), 0))
    if policy.evicts:
        engine.prefill(prompt, pin=True)
        # batches of a quarter budget leave the policy room to evict before each
        engine.prefill(rest, pin=False, chunk=max(policy.budget // 4, 1))
    else:
        engine.prefill((prompt + rest)[:max(length, len(prompt))], pin=True)
