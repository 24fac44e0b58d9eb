"""Policy variants in `bench --policies`: ``kind[:setting=value;...]``, their names and their settings key.

``--policies raas,raas:page_score=mean,raas:refresh_ratio=0.25;protect_pages=1``
is a comma list of kinds, each optionally followed by ``:`` and settings joined
by ``;`` (a comma would end the item). The policies themselves are built by
raas_local.policies.make, the one place policies are built; this module only
parses the text, checks each setting against its kind, and names the result.

A variant is named after what differs from its kind's defaults
(``raas[page_score=mean]-512``), so a variant that spells out a default is its
kind's plain name (and the same run). Records store every setting of the policy
(``settings``), and that is part of the store key: a resume never mixes values,
and a changed default never passes for the old one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field

from raas_local.errors import InputError, PolicyError

# swept by the suites themselves (--budget/--budgets, --page-size), not per variant
SWEPT = ("budget", "page_size")


@dataclass(frozen=True)
class Spec:
    """One item of --policies: a kind and the settings written after its colon."""
    kind: str
    settings: dict = field(default_factory=dict, hash=False, compare=False)
    text: str = ""


def _convert(kind: str, name: str, value: str, default):
    """The setting's value from text: the shared flag's type where there is one, else its default's type."""
    from raas_local import flags

    typ = flags.POLICY_FLAGS[name][0] if name in flags.POLICY_FLAGS else type(default)
    try:
        return typ(value)
    except (ValueError, TypeError, argparse.ArgumentTypeError) as e:
        raise InputError(f"--policies: {kind} {name}={value!r}: {e}") from None


def parse(text: str) -> list[Spec]:
    """The items of --policies, each checked against its kind's settings (one-line errors)."""
    from raas_local.policies.base import kind_class

    specs = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        kind, colon, rest = item.partition(":")
        kind = kind.strip().lower()
        cls = kind_class(kind)
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        settings: dict = {}
        for pair in (p.strip() for p in rest.split(";")) if colon else ():
            if not pair:
                continue
            name, eq, value = pair.partition("=")
            name = name.strip().replace("-", "_")
            if not eq or not name or not value.strip():
                raise InputError(f"--policies: {item!r}: expected setting=value after the colon, got {pair!r}")
            if name in SWEPT:
                raise InputError(f"--policies: {item!r}: {name} is set for every policy by "
                                 f"{'--budget/--budgets' if name == 'budget' else '--page-size'}, not per variant")
            if name not in defaults:
                others = [s for s in cls.settings() if s not in SWEPT]
                raise PolicyError(f"--policies: policy {kind} has no setting {name!r}"
                                  f" ({'its settings: ' + ', '.join(others) if others else 'it has none to vary'})")
            settings[name] = _convert(kind, name, value.strip(), defaults[name])
        specs.append(Spec(kind, settings, item))
    if not specs:
        raise InputError(f"--policies names no policy: {text!r}")
    return specs


def settings(policy) -> dict:
    """Every setting of the policy but the swept ones: what a record stores and is keyed by."""
    return {k: v for k, v in dataclasses.asdict(policy).items() if k not in SWEPT}


def settings_key(values: dict | None) -> str | None:
    """``settings`` as the store compares them (None: a record from before settings were stored)."""
    return None if values is None else json.dumps(values, sort_keys=True)


def variant(kind: str, values: dict | None) -> str:
    """``[page_score=mean;refresh_ratio=0.25]``: the settings that differ from the kind's defaults, or ''."""
    from raas_local.policies.base import KINDS

    cls = KINDS.get(kind)
    if not values or cls is None:
        return ""
    fields = [f for f in dataclasses.fields(cls) if f.name in values and f.name not in SWEPT]
    diff = [f"{f.name}={values[f.name]}" for f in fields if values[f.name] != f.default]
    return f"[{';'.join(diff)}]" if diff else ""


def series(kind: str, values: dict | None) -> str:
    """A policy's line in plots and its row label in tables, without the budget: ``raas[page_score=mean]``."""
    return kind + variant(kind, values)


def name(kind: str, values: dict | None, budget: int | None) -> str:
    """A run's name: ``raas[page_score=mean]-512``, ``raas-512``, ``dense``."""
    s = series(kind, values)
    return s if budget is None else f"{s}-{budget}"


def policy_name(policy) -> str:
    return name(policy.kind, settings(policy), policy.budget)
