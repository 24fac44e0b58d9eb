"""The cache panel: budget bar, page map, tok/s sparkline, KV bytes, settings.

Decision: the panel only renders PanelState snapshots handed to ``show()``;
it never reads the engine (that belongs to the worker thread), so updating it
costs the UI a re-render and nothing else.
"""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Sparkline, Static

from raas_local.tui.state import PanelState
from raas_local.tui.widgets.budget_bar import BudgetBar
from raas_local.tui.widgets.page_map import PageMap


def human_bytes(n: int) -> str:
    if n >= 1 << 30:
        return f"{n / (1 << 30):.2f} GiB"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.0f} KiB"
    return f"{n} B"


class PanelLine(Widget):
    """A fixed-height line of text. Unlike Static.update, changing it repaints
    the line without a relayout of the screen, which matters at 10 updates/s."""

    DEFAULT_CSS = """
    PanelLine { height: 1; }
    """

    def __init__(self, text: str = "", lines: int = 1, **kw) -> None:
        super().__init__(**kw)
        self.styles.height = lines
        self.text = Text(text)
        self._key: tuple = (text, "")

    def set(self, text: Text) -> None:
        key = (text.plain, str(text.style))
        if key != self._key:
            self._key, self.text = key, text
            self.refresh()

    def render(self) -> Text:
        return self.text


STATUS_STYLE = {"generating": "bold #5fd75f", "loading": "bold #d7af5f", "stopped": "#d7875f", "error": "bold #d75f5f"}


class CachePanel(VerticalScroll):
    DEFAULT_CSS = """
    CachePanel {
        width: 38;
        padding: 0 1;
        border-left: vkey $foreground 20%;
    }
    CachePanel .head { text-style: bold; margin-top: 1; }
    CachePanel #panel-title { margin-top: 0; }
    CachePanel Sparkline { height: 2; margin-bottom: 0; }
    CachePanel Sparkline > .sparkline--max-color { color: #5fd75f; }
    CachePanel Sparkline > .sparkline--min-color { color: #d75f5f; }
    """

    SPARK_POINTS = 64  # samples kept: ~6 s at 10 updates/s

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.state = PanelState()
        self.rates: deque[float] = deque(maxlen=self.SPARK_POINTS)

    def compose(self) -> ComposeResult:
        yield PanelLine(id="panel-title", classes="head")
        yield PanelLine(id="panel-config")
        yield Static("Budget", classes="head")
        yield BudgetBar(id="budget-bar")
        yield PanelLine(id="panel-pages", classes="head")
        yield PageMap(id="page-map")
        yield PanelLine(id="panel-rate", classes="head")
        yield Sparkline([], id="rate-spark")
        yield Static("KV memory", classes="head")
        yield PanelLine(id="panel-bytes", lines=2)
        yield PanelLine(id="panel-pos")
        yield PanelLine(id="panel-status", classes="head")

    def on_mount(self) -> None:
        self.show(self.state)

    def _set(self, wid: str, text: Text) -> None:
        self.query_one(f"#{wid}", PanelLine).set(text)

    def show(self, state: PanelState) -> None:
        """Render a snapshot; a tok/s sample in it joins the sparkline."""
        self.state = state
        if state.tok_per_s is not None:
            self.rates.append(state.tok_per_s)
        if not self.is_mounted:
            return
        s = state
        self._set("panel-title", Text(f"KV cache · {s.policy}"))
        config = f"budget {s.budget} · page {s.page_size}"
        if s.evicts and s.refresh_ratio is not None:
            config += f" · refresh {s.refresh_ratio:g}"
        self._set("panel-config", Text(config, style="dim"))
        self.query_one("#budget-bar", BudgetBar).show(s)
        self._set("panel-pages", Text(f"Pages {len(s.pages)} · evicted {s.evictions} ({s.evicted_cells} cells)"))
        self.query_one("#page-map", PageMap).show(s)
        rate = self.rates[-1] if self.rates else None
        rate_txt = f"{rate:.1f}" if rate is not None and s.status == "generating" else "–"
        self._set("panel-rate", Text(f"tok/s {rate_txt} · {s.generated} tokens"))
        spark = self.query_one("#rate-spark", Sparkline)
        spark.data = list(self.rates)
        # an empty Sparkline draws a flat min-color line; keep its room, show nothing
        spark.styles.visibility = "visible" if self.rates else "hidden"
        pct = f"  ({100 * s.kv_bytes / s.kv_bytes_dense:.0f}% of dense)" if s.kv_bytes_dense else ""
        self._set("panel-bytes", Text(f"in use {human_bytes(s.kv_bytes)}{pct}\ndense  {human_bytes(s.kv_bytes_dense)} (no eviction)"))
        self._set("panel-pos", Text(f"position {s.newest_pos if s.newest_pos >= 0 else '–'} · step {s.step}", style="dim"))
        self._set("panel-status", Text(s.status, style=STATUS_STYLE.get(s.status, "dim")))
