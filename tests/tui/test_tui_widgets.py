"""Pure pieces of the cache panel, and PanelState read from the real engine."""

from raas_local.tui.state import PageView, PanelState
from raas_local.tui.widgets.budget_bar import segment_widths
from raas_local.tui.widgets.cache_panel import human_bytes
from raas_local.tui.widgets.colors import age_bucket


def test_segment_widths_fill_exactly():
    assert segment_widths([37, 88, 3], 128, 32) == [9, 22, 1]
    for counts in ([0, 0, 128], [128, 0, 0], [1, 126, 1], [40, 40, 48]):
        w = segment_widths(counts, 128, 35)
        assert sum(w) == 35
        assert all(x >= 1 for x, c in zip(w, counts) if c)
        assert all(x == 0 for x, c in zip(w, counts) if not c)


def test_segment_widths_degenerate():
    assert segment_widths([1, 2], 0, 10) == [0, 0]
    assert segment_widths([1, 2], 3, 0) == [0, 0]


def test_age_buckets():
    assert [age_bucket(a, 16) for a in (0, 1, 16, 17, 64, 65, 256, 257)] == [0, 1, 1, 2, 2, 3, 3, 4]


def test_human_bytes():
    assert human_bytes(512) == "512 B"
    assert human_bytes(2880000) == "2.7 MiB"
    assert human_bytes(3 << 30) == "3.00 GiB"


def test_panel_state_from_engine(engine):
    from raas_local.engine import generate_text

    generate_text(engine, "Hi", max_tokens=120, temperature=0.0, ignore_eos=True)
    s = PanelState.from_engine(engine)
    c = engine.cache_stats()
    assert (s.budget, s.used, s.pinned, s.evictions, s.newest_pos) == (128, c.used, c.pinned, c.evictions, c.newest_pos)
    assert s.evictions > 0 and s.used <= 128
    assert len(s.pages) == c.pages and all(isinstance(p, PageView) and p.age >= 0 for p in s.pages)
    assert s.pages[-1].closed is False or s.pages[-1].first_pos + 15 == c.newest_pos
    assert s.kv_bytes == c.kv_bytes and s.kv_bytes_dense == c.kv_bytes_dense > s.kv_bytes
