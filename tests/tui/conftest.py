"""Fixtures for tests/tui: one real engine on the embedded model, shared.

Loading takes about a second, so the session shares one Engine; each test
that uses it gets it back at raas / budget 128 with an empty cache.

One CPU thread: with ggml's OpenMP build, n threads on n cores spin at every
barrier, and any other busy process (or the TUI's own UI thread) on a small
shared machine turns 100 tok/s into a few tok/s. One thread never waits on
a barrier, so test times stay steady (~50 tok/s here).
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def _shared_engine():
    from raas_local.engine import Engine
    from raas_local.policies import CachePolicy

    eng = Engine(model=None, policy=CachePolicy(kind="raas", budget=128, page_size=16, refresh_ratio=0.5), seed=0, n_threads=1)
    yield eng
    eng.close()


@pytest.fixture
def engine(_shared_engine):
    from raas_local.policies import CachePolicy

    want = CachePolicy(kind="raas", budget=128, page_size=16, refresh_ratio=0.5)
    if _shared_engine.policy != want:
        _shared_engine.set_policy(want)
    _shared_engine.reset()
    return _shared_engine
