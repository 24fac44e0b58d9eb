"""Each policy kind is a small dataclass with validated fields."""

from __future__ import annotations

import pytest

from raas_local.errors import PolicyError
from raas_local.policies import KINDS, CachePolicy, H2OPolicy, QuestPolicy, StreamingPolicy


def test_every_kind_is_registered():
    assert set(KINDS) == {"dense", "raas", "streaming", "h2o", "quest"}
    kinds = ("dense", "raas", "streaming", "h2o", "quest")
    assert [CachePolicy(kind=k).evicts for k in kinds] == [False, True, True, True, False]


@pytest.mark.parametrize("kw,msg", [
    (dict(kind="nope"), "unknown policy 'nope'; choose one of: dense, h2o, quest, raas, streaming"),
    (dict(kind="raas", refresh_ratio=0.0), r"refresh ratio must be in \(0, 1\], got 0.0"),
    (dict(kind="raas", refresh_ratio=1.5), "refresh ratio"),
    (dict(kind="streaming", n_sink=-1), "sink count must be >= 0, got -1"),
    (dict(kind="streaming", budget=20), r"budget 20 is below two pages \(32 cells"),
    (dict(kind="h2o", heavy_ratio=1.0), r"heavy-hitter ratio must be in \[0, 1\), got 1.0"),
    (dict(kind="h2o", budget=1), "budget 1 is below two cells"),
    (dict(kind="quest", page_size=24), "quest needs a page size that divides 256, got 24"),
    (dict(kind="quest", budget=16), r"budget 16 is below two pages \(32 cells"),
])
def test_bad_fields_are_refused_with_one_line(kw, msg):
    with pytest.raises(PolicyError, match=msg):
        CachePolicy(**kw)


def test_h2o_is_per_cell_and_splits_the_budget():
    spec = CachePolicy(kind="h2o", budget=100, page_size=16, heavy_ratio=0.3).spec()
    assert isinstance(spec, H2OPolicy)
    assert spec.page_size == 1 and spec.recent == 70
    assert spec.native_params(None)["page_size"] == 1


def test_streaming_keeps_its_sinks_and_pages():
    spec = CachePolicy(kind="streaming", budget=64, page_size=8, n_sink=2).spec()
    assert isinstance(spec, StreamingPolicy)
    assert spec.native_params(None) == dict(kind=2, budget=64, page_size=8, refresh_ratio=1.0, n_sink=2)


def test_quest_attends_whole_pages_and_keeps_every_cell():
    spec = CachePolicy(kind="quest", budget=100, page_size=16).spec()
    assert isinstance(spec, QuestPolicy)
    assert spec.top_pages == 6 and not spec.evicts
    assert spec.native_params(None) == dict(kind=4, budget=100, page_size=16, refresh_ratio=1.0)
