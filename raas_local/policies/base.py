"""Policy: what every cache-policy kind knows about itself, and the one place policies are built.

A kind is a frozen dataclass (one file per kind) whose fields are its settings
and whose ``__post_init__`` checks them; what the kind is (evicts or not, page
size, the native kind it runs as) are class attributes. ``make(kind, **settings)``
builds any kind from settings given by name (CLI flags, solve's records, bench's
sweeps): each kind takes the settings it has, and a setting that no kind has is
an error.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from raas_local.errors import PolicyError

BUDGET = 512     # KV cells, the default of the kinds that take a budget
PAGE_SIZE = 16   # decode positions per page, the paged kinds' default

# kind name -> policy class; filled by @register as the policy modules import
KINDS: dict[str, type["Policy"]] = {}


def register(name: str):
    def deco(cls):
        KINDS[name] = cls
        cls.kind = name
        return cls

    return deco


def tag(kind: str, budget: int | None) -> str:
    """A run's name in file names, tables, plots and progress lines: ``raas-512``, or ``dense`` (no budget).
    Records store kind and budget apart; this joins them, for policies and records alike."""
    return kind if budget is None else f"{kind}-{budget}"


class Policy:
    """The interface every kind's dataclass has. Defaults here are a kind without a budget (dense)."""

    kind: ClassVar[str]
    native_kind: ClassVar[int]
    evicts: ClassVar[bool] = False
    gpu_flash_attn: ClassVar[bool] = True  # whether ggml-cuda's flash attention can run this kind's graph
    budget = None    # KV cells of the sequence (quest: cells each head attends); None: the kind takes none
    page_size = 1    # decode positions per page

    @classmethod
    def settings(cls) -> tuple[str, ...]:
        """The settings this kind takes: its dataclass fields."""
        return tuple(f.name for f in dataclasses.fields(cls))

    def as_dict(self) -> dict:
        """The kind and its settings: what a record stores and ``make(**d)`` rebuilds."""
        return {"policy": self.kind, **dataclasses.asdict(self)}

    @property
    def tag(self) -> str:
        return tag(self.kind, self.budget)

    def min_budget(self, n_pinned: int) -> int:
        """The smallest budget that holds n_pinned prompt cells and leaves two pages to decode in."""
        return n_pinned + 2 * self.page_size

    def fits(self, n_pinned: int) -> bool:
        """Whether n_pinned prompt cells leave the room to decode that an evicting kind needs."""
        return not self.evicts or self.min_budget(n_pinned) <= self.budget

    def native_params(self) -> dict:
        """Keyword arguments of raas_local.native.set_policy."""
        return dict(kind=self.native_kind, budget=self.budget or 0, page_size=self.page_size, refresh_ratio=1.0)

    def with_(self, **changes) -> "Policy":
        """A copy with some settings changed (validated); PolicyError for a setting this kind lacks."""
        bad = [k for k in changes if k not in self.settings()]
        if bad:
            raise PolicyError(f"policy {self.kind} has no {bad[0].replace('_', ' ')} setting")
        return dataclasses.replace(self, **changes)


def check_pages(budget: int, page_size: int) -> None:
    """The paged kinds' shared limits: pages of at least one cell, room for two pages."""
    if page_size < 1:
        raise PolicyError(f"page size must be at least 1, got {page_size}")
    if budget < 2 * page_size:
        raise PolicyError(f"budget {budget} is below two pages ({2 * page_size} cells at page size {page_size})")


def kind_class(kind: str) -> type[Policy]:
    import raas_local.policies  # noqa: F401  (importing the package registers every kind)

    if kind not in KINDS:
        raise PolicyError(f"unknown policy {kind!r}; choose one of: {', '.join(sorted(KINDS))}")
    return KINDS[kind]


def all_settings() -> set[str]:
    import raas_local.policies  # noqa: F401  (registers every kind)

    return {s for cls in KINDS.values() for s in cls.settings()}


def make(kind: str, **settings) -> Policy:
    """The kind's policy from the settings it has among ``settings`` (the others are for other kinds)."""
    cls = kind_class(kind)
    unknown = sorted(set(settings) - all_settings())
    if unknown:
        raise PolicyError(f"no policy has a setting {unknown[0]!r}")
    return cls(**{k: v for k, v in settings.items() if k in cls.settings()})


def unused_settings(kinds, names) -> list[str]:
    """The names, among ``names``, that none of ``kinds`` takes (a flag given for nothing)."""
    return [n for n in names if not any(n in kind_class(k).settings() for k in kinds)]


def takers(name: str) -> list[str]:
    """The kinds that take setting ``name``."""
    import raas_local.policies  # noqa: F401  (registers every kind)

    return sorted(k for k, cls in KINDS.items() if name in cls.settings())


def CachePolicy(kind: str = "raas", **settings) -> Policy:
    """Convenience: ``CachePolicy(kind="raas", budget=512)`` is ``RaasPolicy(budget=512)``."""
    return make(kind, **settings)
