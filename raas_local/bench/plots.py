"""PNG plots of bench records, one file per suite, one line per policy.

matplotlib's object API on the Agg canvas (no pyplot, so no global backend or
display is touched). Lengths and budgets double from point to point, so their
axes are log2; values stay linear so that small differences near 1.0 (top-1
agreement) or 0 (KL) remain visible.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

MIB = 2**20


def series_name(r: dict) -> str:
    return r["policy"] if r.get("budget") is None else f"{r['policy']}@{r['budget']}"


def _order(names):
    return sorted(names, key=lambda n: (not n.startswith("dense"), n))


MARKERS = "osD^v<>"
STYLES = ("-", "--", "-.", ":")


def _style(kind: str) -> dict:
    """A policy keeps its colour, marker and dash in every plot; marker and dash differ so that
    lines that coincide (every evicting policy holds exactly its budget) stay visible."""
    from raas_local.policies import KINDS

    kinds = sorted(KINDS, key=lambda k: (k != "dense", k))
    i = kinds.index(kind) if kind in kinds else len(kinds)
    return dict(color="black" if kind == "dense" else f"C{i}", marker=MARKERS[i % len(MARKERS)],
                linestyle=STYLES[i % len(STYLES)], markersize=8 if kind == "dense" else 6)


def _lines(ax, records, x, y, name=series_name, scale=1.0):
    groups: dict[str, list] = {}
    for r in records:
        groups.setdefault(name(r), []).append(r)
    for n in _order(groups):
        rs = sorted(groups[n], key=lambda r: r[x])
        ax.plot([r[x] for r in rs], [r[y] / scale for r in rs], label=n, **_style(rs[0]["policy"]))


def _figure(n_panels: int, title: str):
    fig = Figure(figsize=(5.5 * n_panels, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n_panels, squeeze=False)[0]
    fig.suptitle(title)
    return fig, axes


def _log2_x(ax, values, label):
    ax.set_xscale("log", base=2)
    ticks = sorted(set(values))
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel(label)
    ax.grid(True, alpha=0.3)


def plot_speed(records: list[dict], path: Path, title: str = "Decode speed and KV memory vs context length") -> None:
    fig, (a, b) = _figure(2, title)
    _lines(a, records, "length", "tok_per_s")
    a.set_ylabel("decode tok/s")
    _lines(b, records, "length", "kv_bytes", scale=MIB)
    b.set_ylabel("KV cache (MiB)")
    for ax in (a, b):
        ax.set_ylim(bottom=0)  # from zero: ratios read true
        _log2_x(ax, [r["length"] for r in records], "context length (tokens)")
        ax.legend()
    fig.savefig(path, dpi=100)


def plot_memory(records: list[dict], path: Path, title: str = "KV memory vs context length") -> None:
    fig, (a,) = _figure(1, title)
    _lines(a, records, "length", "kv_bytes", scale=MIB)
    a.set_ylabel("KV cache (MiB)")
    a.set_ylim(bottom=0)
    _log2_x(a, [r["length"] for r in records], "context length (tokens)")
    a.legend()
    fig.savefig(path, dpi=100)


def plot_fidelity(records: list[dict], path: Path, title: str = "Fidelity to dense vs budget") -> None:
    fig, (a, b) = _figure(2, title)
    policies = [r for r in records if r["policy"] != "dense"]
    _lines(a, policies, "budget", "top1_agreement", name=lambda r: r["policy"])
    _lines(b, policies, "budget", "mean_kl", name=lambda r: r["policy"])
    # dense is the reference: a flat line, not a point per budget
    if any(r["policy"] == "dense" for r in records):
        a.axhline(1.0, color="black", linestyle="--", label="dense (reference)")
        b.axhline(0.0, color="black", linestyle="--", label="dense (reference)")
    lows = [r["top1_agreement"] for r in policies] or [1.0]
    a.set_ylim(max(0.0, min(lows) - 0.05), 1.01)  # agreement lives in [0, 1]
    b.set_ylim(bottom=min(0.0, b.get_ylim()[0]))
    a.set_ylabel("top-1 agreement with dense")
    b.set_ylabel("mean KL(dense || policy), nats")
    budgets = [r["budget"] for r in policies] or [1]
    for ax in (a, b):
        _log2_x(ax, budgets, "budget (KV cells)")
        ax.legend()
    fig.savefig(path, dpi=100)


def plot_accuracy(records: list[dict], path: Path, title: str = "Problems solved vs budget") -> None:
    fig, (a,) = _figure(1, title)
    policies = [r for r in records if r["policy"] != "dense"]
    _lines(a, policies, "budget", "accuracy", name=lambda r: r["policy"])
    for r in records:
        if r["policy"] == "dense":  # no budget: a flat line
            a.axhline(r["accuracy"], color="black", linestyle="--", label=f"dense ({r['accuracy']:.1%})")
    a.set_ylim(0.0, max([r["accuracy"] for r in records] + [0.05]) * 1.15)
    a.set_ylabel("accuracy (share of problems solved)")
    _log2_x(a, [r["budget"] for r in policies] or [1], "budget (KV cells)")
    a.legend()
    fig.savefig(path, dpi=100)
