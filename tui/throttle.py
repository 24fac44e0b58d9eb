"""How often the worker hands the UI a batch of text and a cache snapshot.

Decisions:
- Text goes to the UI at most 10 times a second; the cache panel at most 4
  times (a few a second read as live; a snapshot also costs the
  worker a native page-table read).
- The text rate adapts to what an update costs here. Each update costs the
  UI thread a Markdown append, a relayout and a repaint (~10 ms on a small
  CPU), and that CPU is taken from the decode when cores are scarce. So the
  UI measures its own thread's CPU share over >= 1 s windows and stretches
  the text interval toward a 5% share of a core, up to 0.25 s (still 4
  updates/s, which reads as streaming); on a fast machine it stays at 0.1 s.
- The UI thread writes ``text_interval`` and the worker reads it: a float
  attribute, so no lock is needed.
"""

from __future__ import annotations

import time


class Throttle:
    def __init__(self, text_interval: float = 0.1, panel_interval: float = 0.25,
                 max_interval: float = 0.25, ui_share: float = 0.05, window_s: float = 1.0) -> None:
        self.min_interval = text_interval
        self.max_interval = max_interval
        self.text_interval = text_interval
        self.panel_interval = panel_interval
        self.ui_share = ui_share
        self.window_s = window_s
        self._mark: tuple[float, float] | None = None

    def start(self) -> None:
        """A new reply: measure from now (call on the UI thread)."""
        self._mark = (time.thread_time(), time.perf_counter())

    def observe(self, cpu_s: float | None = None, wall_s: float | None = None) -> None:
        """After an update, on the UI thread. Tests pass the clock readings."""
        cpu = time.thread_time() if cpu_s is None else cpu_s
        wall = time.perf_counter() if wall_s is None else wall_s
        if self._mark is None:
            self._mark = (cpu, wall)
            return
        d_cpu, d_wall = cpu - self._mark[0], wall - self._mark[1]
        if d_wall < self.window_s:
            return
        self._mark = (cpu, wall)
        share = d_cpu / d_wall
        # the UI's share is about (cost per update) / interval: scale to the target
        want = self.text_interval * share / self.ui_share
        self.text_interval = min(max(want, self.min_interval), self.max_interval)
