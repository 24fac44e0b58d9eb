"""The page map: one glyph per decode page, colored by steps since its last refresh."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from raas_local.tui.state import PanelState
from raas_local.tui.widgets.colors import AGE_COLORS, age_bucket, age_legend

CLOSED, OPEN = "■", "□"   # the open page holds the newest position and is never evicted


class PageMap(Widget):
    """Pages in position order, wrapped to the widget's width; a legend line.

    Decision: height follows the number of rows (``height: auto``) so a large
    budget (e.g. 4096 cells = 256 pages) still shows every page."""

    DEFAULT_CSS = """
    PageMap { height: auto; min-height: 2; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.state = PanelState()

    def show(self, state: PanelState) -> None:
        old = self.state
        if (old.pages, old.page_size, old.evicts) == (state.pages, state.page_size, state.evicts):
            self.state = state
            return
        rows_before = self._rows(self.size.width)
        self.state = state
        # relayout only when the number of rows changes; otherwise a repaint will do
        self.refresh(layout=self._rows(self.size.width) != rows_before)

    def _rows(self, width: int) -> int:
        width = max(width // 2, 1)
        return max(-(-len(self.state.pages) // width), 1)

    def get_content_height(self, container, viewport, width: int) -> int:
        return self._rows(width) + 1

    def render(self) -> Text:
        s = self.state
        per_row = max(self.size.width // 2, 1)  # glyph + space
        out = Text()
        if not s.evicts:
            out.append("no pages (dense keeps every cell)", style="dim")
        elif not s.pages:
            out.append("no decode pages yet", style="dim")
        for i, p in enumerate(s.pages):
            if i and i % per_row == 0:
                out.append("\n")
            color = AGE_COLORS[age_bucket(p.age, s.page_size)]
            out.append(CLOSED if p.closed else OPEN, style=color)
            out.append(" ")
        out.append("\n")
        out.append("age ", style="dim")
        for label, color in age_legend(s.page_size):
            out.append("■", style=color)
            out.append(f"{label} ")
        return out
