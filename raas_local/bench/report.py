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
    over = [r for r in records if _evicts(r) and r["kv_cells"] > r["budget"]]
    lines.append("met: kv_cells <= budget for every evicting policy and length" if not over
                 else f"MISSED: kv_cells > budget in {len(over)} records")
    return lines


def _evicts(r: dict) -> bool:
    """Records of the policies whose budget bounds the cells held (quest's bounds the cells attended)."""
    from raas_local.policies import CachePolicy

    return r.get("budget") is not None and CachePolicy(kind=r["policy"], budget=r["budget"], page_size=r.get("page_size") or 16).evicts


def _name(r: dict) -> str:
    return r["policy"] if r.get("budget") is None else f"{r['policy']}@{r['budget']}"


def _series_order(records: list[dict]) -> list[str]:
    return sorted({_name(r) for r in records}, key=lambda n: (not n.startswith("dense"), n))


def memory_table(records: list[dict]) -> str:
    """Markdown: one row per length, KV cells (MiB) per policy, and each policy's share of dense."""
    names = _series_order(records)
    lengths = sorted({r["length"] for r in records})
    by = {(_name(r), r["length"]): r for r in records}
    dense = next((n for n in names if n == "dense"), None)
    others = [n for n in names if n != dense]
    head = ["length"] + [f"{n} KV cells (MiB)" for n in names] + ([f"{n} / dense" for n in others] if dense else [])
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in lengths:
        cells = [str(n)]
        for s in names:
            r = by.get((s, n))
            cells.append(f"{r['kv_cells']} ({r['kv_bytes'] / 2**20:.1f})" if r else "-")
        if dense:
            for s in others:
                a, b = by.get((s, n)), by.get((dense, n))
                cells.append(f"{a['kv_bytes'] / b['kv_bytes']:.2f}" if a and b and b["kv_bytes"] else "-")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def compute_table(records: list[dict]) -> str:
    """Markdown: the compute buffer (prefill's peak working memory, MiB) per length and policy."""
    names = _series_order(records)
    by = {(_name(r), r["length"]): r for r in records}
    rows = ["| length | " + " | ".join(f"{n} compute (MiB)" for n in names) + " |", "|" + "---|" * (len(names) + 1)]
    for n in sorted({r["length"] for r in records}):
        cells = [f"{by[(s, n)].get('compute_bytes', 0) / 2**20:.1f}" if (s, n) in by else "-" for s in names]
        rows.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def memory_checks(records: list[dict]) -> list[str]:
    """Evicting policies stay within budget; dense and quest hold every token. Stated, not asserted."""
    over = [r for r in records if _evicts(r) and r["kv_cells"] > r["budget"]]
    short = [r for r in records if not _evicts(r) and r["kv_cells"] != r["length"]]
    return [
        "met: kv_cells <= budget for every evicting policy and length" if not over
        else f"MISSED: kv_cells > budget in {len(over)} records",
        "met: dense and quest hold every token (kv_cells == length)" if not short
        else f"MISSED: dense or quest kv_cells != length in {len(short)} records",
    ]


def fidelity_table(records: list[dict]) -> str:
    """Markdown: the dense reference row, then one row per policy and budget."""
    head = ["policy", "budget", "top-1 agreement", "mean KL (nats)", "first miss", "tok/s", "KV cells (MiB)"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ordered = sorted(records, key=lambda r: (r["policy"] != "dense", r["budget"] or 0, r["policy"]))
    for r in ordered:
        dense = r["policy"] == "dense"
        miss = "-" if r.get("first_miss") is None else str(r["first_miss"])
        rows.append("| " + " | ".join([
            "dense (reference)" if dense else r["policy"], "all" if dense else str(r["budget"]),
            f"{r['top1_agreement']:.3f}", f"{r['mean_kl']:.4f}", miss, f"{r['tok_per_s']:.1f}",
            f"{r['kv_cells']} ({r['kv_bytes'] / 2**20:.1f})",
        ]) + " |")
    return "\n".join(rows)


def accuracy_table(records: list[dict]) -> str:
    """Markdown: dense, then one row per policy and budget."""
    head = ["policy", "budget", "accuracy", "correct / n", "answered", "mean tokens", "peak KV cells", "evictions", "tok/s"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ordered = sorted(records, key=lambda r: (r["policy"] != "dense", r["budget"] or 0, r["policy"]))

    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    for r in ordered:
        rows.append("| " + " | ".join([
            r["policy"], "all" if r["budget"] is None else str(r["budget"]), f"{r['accuracy']:.1%}",
            f"{r['correct']} / {r['n']}", str(r["answered"]), num(r["mean_generated_tokens"], ".0f"),
            num(r["peak_kv_cells"], "d"), str(r["evictions"]), num(r["tok_per_s"], ".1f"),
        ]) + " |")
    return "\n".join(rows)


SUITE_TITLES = {"speed": "Speed", "memory": "Memory", "fidelity": "Fidelity", "accuracy": "Accuracy"}


def suite_markdown(suite: str, table: str, settings: str, notes: list[str], image: str | None) -> str:
    """One suite's section: title, settings line, table, checks, plot."""
    parts = [f"## {SUITE_TITLES.get(suite, suite)}", "", settings, "", table]
    if notes:
        parts += [""] + [f"- {n}" for n in notes]
    if image:
        parts += ["", f"![{suite}]({image})"]
    return "\n".join(parts) + "\n"


def combined_report(sections: list[str], header: str) -> str:
    """report.md: a header, then every suite's section in order."""
    return "\n".join([header, ""] + sections)
