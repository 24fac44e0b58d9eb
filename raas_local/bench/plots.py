"""What the suites' PNG plots share: one figure per suite, one line per policy, each policy in its own style.

matplotlib's object API on the Agg canvas (no pyplot, so no global backend or
display is touched). Lengths and budgets double from point to point, so their
axes are log2; values stay linear so that small differences near 1.0 (top-1
agreement) or 0 (KL) remain visible.
"""

from __future__ import annotations


from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from matplotlib import colormaps

from raas_local.bench.report import name as series_name
from raas_local.bench.variants import variant

MIB = 2**20


MARKERS = "osD^v<>"
STYLES = ("-", "--", "-.", ":")
VARIANT_COLORS = colormaps["tab10"].reversed()  # C9, C8, ...: the kinds take C1-C4


def style(kind: str) -> dict:
    """A policy keeps its colour, marker and dash in every plot; marker and dash differ so that
    lines that coincide (every evicting policy holds exactly its budget) stay visible."""
    from raas_local.policies import KINDS

    kinds = sorted(KINDS, key=lambda k: (k != "dense", k))
    i = kinds.index(kind) if kind in kinds else len(kinds)
    return dict(color="black" if kind == "dense" else f"C{i}", marker=MARKERS[i % len(MARKERS)],
                linestyle=STYLES[i % len(STYLES)], markersize=8 if kind == "dense" else 6)


def variant_style(j: int) -> dict:
    """The j-th variant line of a plot (a kind with settings of its own): colours of their own, so that
    an ablation's lines stay apart from each other and from the kinds' own."""
    return dict(color=VARIANT_COLORS(j % 10), marker=MARKERS[(j + 1) % len(MARKERS)],
                linestyle=STYLES[(j + 1) % len(STYLES)], markersize=6)


def lines(ax, records, x, y, name=series_name, scale=1.0):
    groups: dict[str, list] = {}
    for r in records:
        groups.setdefault(name(r), []).append(r)
    j = 0
    for n in sorted(groups, key=lambda n: (not n.startswith("dense"), n)):
        rs = sorted(groups[n], key=lambda r: r[x])
        if variant(rs[0]["policy"], rs[0].get("settings")):
            st, j = variant_style(j), j + 1
        else:
            st = style(rs[0]["policy"])
        ax.plot([r[x] for r in rs], [r[y] / scale for r in rs], label=n, **st)


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
