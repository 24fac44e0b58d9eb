"""CachePolicy: the user-facing description of a KV-cache policy."""

from __future__ import annotations

from dataclasses import dataclass

from raas_local.errors import PolicyError

# kind name -> policy dataclass; filled by the policy modules as they import
KINDS: dict[str, type] = {}


def check_pages(budget: int, page_size: int) -> None:
    """The paged policies' shared limits: pages of at least one cell, room for two pages."""
    if page_size < 1:
        raise PolicyError(f"page size must be at least 1, got {page_size}")
    if budget < 2 * page_size:
        raise PolicyError(f"budget {budget} is below two pages ({2 * page_size} cells at page size {page_size})")


def register(name: str):
    def deco(cls):
        KINDS[name] = cls
        cls.name = name
        return cls

    return deco


@dataclass(frozen=True)
class CachePolicy:
    kind: str = "raas"
    budget: int = 512          # KV cells of the sequence, prompt included (quest: cells each head attends)
    page_size: int = 16        # decode positions per page
    refresh_ratio: float = 0.5  # raas: share of pages refreshed per step
    n_sink: int = 4            # streaming: sink cells
    heavy_ratio: float = 0.5   # h2o: share of the budget for heavy hitters

    def __post_init__(self):
        # importing the package registers every kind
        import raas_local.policies  # noqa: F401

        if self.kind not in KINDS:
            raise PolicyError(f"unknown policy {self.kind!r}; choose one of: {', '.join(sorted(KINDS))}")
        self.spec()  # validates

    def spec(self):
        """The kind's own dataclass, validated."""
        return KINDS[self.kind].from_policy(self)

    @property
    def evicts(self) -> bool:
        return self.spec().evicts

    def min_budget(self, n_pinned: int) -> int:
        """The smallest budget that holds n_pinned prompt cells and leaves two pages to decode in (DESIGN.md)."""
        return n_pinned + 2 * self.spec().page_size

    def with_(self, **changes) -> "CachePolicy":
        from dataclasses import replace

        return replace(self, **changes)
