from raas_local.tui.throttle import Throttle


def test_cheap_updates_keep_ten_per_second():
    t = Throttle()
    t.observe(0.0, 0.0)
    t.observe(0.03, 1.0)  # 3% of a core
    assert t.text_interval == 0.1


def test_costly_updates_stretch_the_interval_within_bounds():
    t = Throttle()
    t.observe(0.0, 0.0)
    t.observe(0.10, 1.0)  # 10% at 0.1 s -> 0.2 s for 5%
    assert abs(t.text_interval - 0.2) < 1e-9
    t.observe(0.60, 2.0)  # 50%: capped
    assert t.text_interval == t.max_interval == 0.25
    t.observe(0.61, 3.0)  # idle again: back down to the floor
    assert t.text_interval == 0.1


def test_short_windows_are_not_judged():
    t = Throttle()
    t.observe(0.0, 0.0)
    t.observe(0.5, 0.5)
    assert t.text_interval == 0.1
