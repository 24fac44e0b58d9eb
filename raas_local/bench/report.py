"""Tables and ratios from bench records."""

from __future__ import annotations


def speed_table(records: list[dict]) -> str:
    """Markdown: one row per length, tok/s and KV per policy, and raas/dense ratios."""
    policies = sorted({(r["policy"], r["budget"]) for r in records}, key=lambda p: (p[0] != "dense", p))
    lengths = sorted({r["length"] for r in records})
    by = {(r["policy"], r["budget"], r["length"]): r for r in records}

    def name(p):
        return p[0] if p[1] is None else f"{p[0]}@{p[1]}"

    head = ["length"] + [f"{name(p)} tok/s" for p in policies] + [f"{name(p)} KV cells (MiB)" for p in policies]
    dense = next((p for p in policies if p[0] == "dense"), None)
    others = [p for p in policies if p != dense]
    if dense:
        head += [f"{name(p)} / dense" for p in others]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in lengths:
        cells = [str(n)]
        cells += [f"{by[(*p, n)]['tok_per_s']:.1f}" if (*p, n) in by else "-" for p in policies]
        cells += [f"{by[(*p, n)]['kv_cells']} ({by[(*p, n)]['kv_bytes'] / 2**20:.1f})" if (*p, n) in by else "-" for p in policies]
        if dense:
            for p in others:
                a, b = by.get((*p, n)), by.get((*dense, n))
                cells.append(f"{a['tok_per_s'] / b['tok_per_s']:.2f}x" if a and b else "-")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def speed_targets(records: list[dict], budget: int) -> list[str]:
    """The issue's targets, each as a line with the measured ratio; nothing is asserted."""
    by = {(r["policy"], r["length"]): r for r in records}
    lines = []

    def ratio(a, b):
        return by[a]["tok_per_s"] / by[b]["tok_per_s"] if a in by and b in by else None

    checks = [
        (f"raas@{budget} at 8192 >= 3x dense at 8192", ratio(("raas", 8192), ("dense", 8192)), 3.0),
        ("raas at 16384 >= 0.9x raas at 512 (flat)", ratio(("raas", 16384), ("raas", 512)), 0.9),
    ]
    below = [n for (p, n) in by if p == "raas" and n < budget]
    if below:
        n = max(below)
        checks.append((f"raas >= 0.95x dense at {n} (< budget: score overhead)", ratio(("raas", n), ("dense", n)), 0.95))
    for text, r, target in checks:
        if r is not None:
            lines.append(f"{'met' if r >= target else 'MISSED'}: {text}: {r:.2f}x")
    over = [r for r in records if r["policy"] != "dense" and r["budget"] and r["kv_cells"] > r["budget"]]
    lines.append("met: kv_cells <= budget at every length" if not over else f"MISSED: kv_cells > budget in {len(over)} records")
    return lines
