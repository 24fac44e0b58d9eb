"""Each policy kind is a small dataclass with validated fields."""

from __future__ import annotations

import pytest

from raas_local.errors import PolicyError
from raas_local.policies import KINDS, CachePolicy, DensePolicy, H2OPolicy, QuestPolicy, RaasPolicy, StreamingPolicy


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
    (dict(kind="raas", head_agg="mean"), "head aggregation must be sum or max, got 'mean'"),
    (dict(kind="raas", page_score="min"), "page score must be max, mean, sum, got 'min'"),
    (dict(kind="raas", skip_layers=-1), "skipped layers and protected pages must be >= 0"),
    (dict(kind="raas", budget=64, protect_pages=3), r"budget 64 is below 5 pages \(80 cells: two to decode in, 3 protected\)"),
])
def test_bad_fields_are_refused_with_one_line(kw, msg):
    with pytest.raises(PolicyError, match=msg):
        CachePolicy(**kw)


def test_h2o_is_per_cell_and_splits_the_budget():
    spec = CachePolicy(kind="h2o", budget=100, page_size=16, heavy_ratio=0.3)  # page size: another kind's setting
    assert isinstance(spec, H2OPolicy)
    assert spec.page_size == 1 and spec.recent == 70
    assert spec.native_params()["page_size"] == 1
    assert spec.min_budget(10) == 12  # two single-cell pages


def test_streaming_keeps_its_sinks_and_pages():
    spec = CachePolicy(kind="streaming", budget=64, page_size=8, n_sink=2)
    assert isinstance(spec, StreamingPolicy)
    assert spec.native_params() == dict(kind=2, budget=64, page_size=8, refresh_ratio=1.0, n_sink=2)


def test_quest_attends_whole_pages_and_keeps_every_cell():
    spec = CachePolicy(kind="quest", budget=100, page_size=16)
    assert isinstance(spec, QuestPolicy)
    assert spec.top_pages == 6 and not spec.evicts
    assert spec.native_params() == dict(kind=4, budget=100, page_size=16, refresh_ratio=1.0)


def test_one_tag_names_a_run_everywhere():
    """`raas-512` in file names, tables and progress lines alike (bench once said `raas@512`)."""
    assert RaasPolicy(budget=512).tag == "raas-512"
    assert QuestPolicy(budget=256).tag == "quest-256"  # quest's budget bounds attention, not memory: still named
    assert CachePolicy(kind="h2o", budget=64).tag == "h2o-64"
    assert DensePolicy().tag == "dense" and DensePolicy().budget is None  # dense has no budget


def test_settings_belong_to_their_kinds():
    assert DensePolicy.settings() == ()
    assert RaasPolicy.settings() == ("budget", "page_size", "refresh_ratio", "head_agg", "skip_layers", "page_score",
                                     "protect_pages")
    assert H2OPolicy.settings() == ("budget", "heavy_ratio")
    # a record's dict rebuilds the same policy
    p = CachePolicy(kind="h2o", budget=300, heavy_ratio=0.2)
    d = p.as_dict()
    assert d == {"policy": "h2o", "budget": 300, "heavy_ratio": 0.2}
    assert CachePolicy(kind=d.pop("policy"), **d) == p
    with pytest.raises(PolicyError, match="no policy has a setting 'heavy'"):
        CachePolicy(kind="h2o", heavy=0.2)
    with pytest.raises(PolicyError, match="policy dense has no budget setting"):
        DensePolicy().with_(budget=64)
    assert RaasPolicy(budget=64).with_(budget=128) == RaasPolicy(budget=128)


def test_protected_pages_raise_the_smallest_budget():
    paper, protected = CachePolicy(kind="raas", budget=128), CachePolicy(kind="raas", budget=128, protect_pages=2)
    assert paper.min_budget(40) == 40 + 2 * 16
    assert protected.min_budget(40) == 40 + 4 * 16
    assert paper.fits(64) and not protected.fits(80) and protected.fits(64)


def test_the_c_apis_default_raas_params_are_the_python_defaults():
    """A C caller of llama_raas_default_params gets the rule raas-local ships (docs/raas-policy.md)."""
    from raas_local import native

    c, py = native._default_params(), RaasPolicy()
    assert (c.budget, c.page_size, c.skip_layers, c.protect_pages) == (py.budget, py.page_size, py.skip_layers, py.protect_pages)
    assert c.refresh_ratio == pytest.approx(py.refresh_ratio)
    assert (c.head_agg, c.page_score) == (native.HEAD_AGG[py.head_agg], native.PAGE_SCORE[py.page_score])


def test_the_paper_setting_stays_selectable():
    paper = RaasPolicy(**RaasPolicy.PAPER)
    assert (paper.page_score, paper.refresh_ratio, paper.head_agg, paper.skip_layers, paper.protect_pages) == \
        ("max", 0.5, "sum", 0, 0)
    assert paper != RaasPolicy()
