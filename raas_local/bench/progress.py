"""The bench's progress bar: rich.progress on stderr, so stdout keeps only the tables.

One bar counts the suite's items (policy x budget x length); a second counts
the steps of the item in progress where there are many (fidelity's chains).
Finished items print one line above the bars. On a non-terminal stderr rich
draws nothing live, so logs get those lines and the final state only.
"""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class Bars:
    def __init__(self, progress: Progress):
        self.p = progress
        self._items = None
        self._steps = None

    def start_suite(self, name: str, total: int) -> None:
        self._items = self.p.add_task(name, total=total)

    def item(self, description: str) -> None:
        # names hold brackets (raas[page_score=mean]-512, [prompt id]) that rich would read as markup
        self.p.update(self._items, description=escape(description))

    def steps(self, done: int, total: int) -> None:
        if self._steps is None:
            self._steps = self.p.add_task("  steps", total=total)
        self.p.update(self._steps, completed=done, total=total)

    def item_done(self, line: str) -> None:
        self.p.advance(self._items)
        if self._steps is not None:
            self.p.remove_task(self._steps)
            self._steps = None
        self.p.console.print(line, highlight=False, markup=False, soft_wrap=True)  # a log line stays one line


@contextmanager
def bars():
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(),
        console=Console(stderr=True),
    )
    with progress:
        yield Bars(progress)
