"""The budget bar: the KV budget split into pinned / decode / free cells."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from raas_local.tui.state import PanelState
from raas_local.tui.widgets.colors import DECODE, FREE, PINNED


def segment_widths(counts: list[int], total: int, width: int) -> list[int]:
    """Split ``width`` columns in proportion to ``counts`` out of ``total``.

    Any non-zero count gets at least one column (a single pinned cell must
    stay visible); the rounding remainder goes to the largest segments."""
    if width <= 0 or total <= 0:
        return [0] * len(counts)
    exact = [c * width / total for c in counts]
    widths = [max(int(e), 1 if c > 0 else 0) for e, c in zip(exact, counts)]
    target = min(width, max(sum(widths), round(sum(exact))))
    order = sorted(range(len(counts)), key=lambda i: exact[i] - int(exact[i]), reverse=True)
    i = 0
    while sum(widths) < target and counts:
        widths[order[i % len(order)]] += 1
        i += 1
    while sum(widths) > width:
        j = max(range(len(widths)), key=lambda k: widths[k])
        widths[j] -= 1
    return widths


class BudgetBar(Widget):
    DEFAULT_CSS = """
    BudgetBar { height: 2; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.state = PanelState()

    def show(self, state: PanelState) -> None:
        old, self.state = self.state, state
        if (old.pinned, old.used, old.budget) != (state.pinned, state.used, state.budget):
            self.refresh()  # repaint only: the height is fixed

    def render(self) -> Text:
        s = self.state
        width = max(self.size.width, 1)
        # dense can exceed its nominal budget only up to the context; clamp for drawing
        total = max(s.budget, s.used, 1)
        free = max(total - s.used, 0)
        counts = [s.pinned, max(s.used - s.pinned, 0), free]
        wp, wd, wf = segment_widths(counts, total, width)
        bar = Text()
        bar.append("█" * wp, style=PINNED)
        bar.append("█" * wd, style=DECODE)
        bar.append("░" * wf, style=FREE)
        legend = Text.assemble(
            ("■", PINNED), f" pinned {s.pinned}  ", ("■", DECODE), f" decode {counts[1]}  ",
            ("░", FREE), f" free {s.free}",
        )
        legend.truncate(width)
        return Text("\n").join([bar, legend])
