"""What the suites' PNG plots share: one figure per suite, one line per policy, each policy in its own style.

matplotlib's object API on the Agg canvas (no pyplot, so no global backend or
display is touched). Lengths and budgets double from point to point, so their
axes are log2; values stay linear so that small differences near 1.0 (top-1
agreement) or 0 (KL) remain visible.
"""

from __future__ import annotations


from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from raas_local.bench.report import name as series_name

MIB = 2**20


MARKERS = "osD^v<>"
STYLES = ("-", "--", "-.", ":")


def style(kind: str) -> dict:
    """A policy keeps its colour, marker and dash in every plot; marker and dash differ so that
    lines that coincide (every evicting policy holds exactly its budget) stay visible."""
    from raas_local.policies import KINDS

    kinds = sorted(KINDS, key=lambda k: (k != "dense", k))
    i = kinds.index(kind) if kind in kinds else len(kinds)
    return dict(color="black" if kind == "dense" else f"C{i}", marker=MARKERS[i % len(MARKERS)],
                linestyle=STYLES[i % len(STYLES)], markersize=8 if kind == "dense" else 6)


def lines(ax, records, x, y, name=series_name, scale=1.0):
    groups: dict[str, list] = {}
    for r in records:
        groups.setdefault(name(r), []).append(r)
    for n in sorted(groups, key=lambda n: (not n.startswith("dense"), n)):
        rs = sorted(groups[n], key=lambda r: r[x])
        ax.plot([r[x] for r in rs], [r[y] / scale for r in rs], label=n, **style(rs[0]["policy"]))


def figure(n_panels: int, title: str):
    fig = Figure(figsize=(5.5 * n_panels, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n_panels, squeeze=False)[0]
    fig.suptitle(title)
    return fig, axes


def log2_x(ax, values, label):
    ax.set_xscale("log", base=2)
    ticks = sorted(set(values))
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel(label)
    ax.grid(True, alpha=0.3)
