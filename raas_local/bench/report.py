"""What the suites' tables share: record names, the budget check, the markdown of a section and of report.md."""

from __future__ import annotations

from raas_local.bench import variants


def name(r: dict) -> str:
    """A record's series: its policy's name (``raas-512``, ``raas[page_score=mean]-512``, ``dense``)."""
    return variants.name(r["policy"], r.get("settings"), r.get("budget"))


def series_order(records: list[dict]) -> list[str]:
    """Dense first, then the others by name."""
    return sorted({name(r) for r in records}, key=lambda n: (not n.startswith("dense"), n))


def evicts(r: dict) -> bool:
    """Records of the policies whose budget bounds the cells held (quest's bounds the cells attended)."""
    from raas_local.policies.base import kind_class

    return r.get("budget") is not None and kind_class(r["policy"]).evicts


def over_budget_check(records: list[dict]) -> str:
    over = [r for r in records if evicts(r) and r["kv_cells"] > r["budget"]]
    return ("met: kv_cells <= budget for every evicting policy and length" if not over
            else f"MISSED: kv_cells > budget in {len(over)} records")


SUITE_TITLES = {"speed": "Speed", "memory": "Memory", "fidelity": "Fidelity", "milestone": "Milestone recall",
                "accuracy": "Accuracy"}


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
