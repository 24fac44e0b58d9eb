"""Fixed colors of the cache panel.

Decision: literal colors rather than theme variables, so the panel reads the
same in every theme and snapshots do not move when Textual's default theme does.
"""

PINNED = "#5f87d7"   # prompt cells, never evicted
DECODE = "#d7af5f"   # cells in decode pages
FREE = "#4e4e4e"     # room left in the budget

# page age (decode steps since last refresh): fresh green -> old red
AGE_COLORS = ("#5fd75f", "#afd75f", "#d7d75f", "#d7875f", "#d75f5f")


def age_bucket(age: int, page_size: int) -> int:
    """0: refreshed at the last step; then <= 1, 4, 16 pages' worth of steps; older."""
    if age <= 0:
        return 0
    for i, pages in enumerate((1, 4, 16), start=1):
        if age <= pages * page_size:
            return i
    return 4


def age_legend(page_size: int) -> list[tuple[str, str]]:
    """(label, color) per bucket, for the legend under the page map."""
    labels = ["0", f"≤{page_size}", f"≤{4 * page_size}", f"≤{16 * page_size}", "older"]
    return list(zip(labels, AGE_COLORS))
