"""The model registry: ``models.toml`` parsed into frozen ``ModelSpec`` objects.

Where the file comes from (decision): the canonical registry is ``models.toml``
at the repository root (the top level of the repository is fixed). Installed wheels
cannot see the repository root, so a package-data copy lives next to this module
(``raas_local/models/models.toml``; pyproject's package-data ships ``*.toml``).
Lookup order:

1. ``$RAAS_LOCAL_MODELS_TOML`` if set (tests, or users with a private registry);
2. ``<parent of the raas_local package>/models.toml`` - a source checkout or an
   editable install, so edits to the root file take effect at once;
3. the packaged copy.

The two copies must stay identical; tests/models/test_registry.py checks it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from raas_local.errors import ModelError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

_PACKAGE_COPY = Path(__file__).with_name("models.toml")
_CHECKOUT_COPY = Path(__file__).resolve().parents[2] / "models.toml"

_REQUIRED = {
    "name": str,
    "file": str,
    "quant": str,
    "think_tags": list,
    "prompt_template": str,
    "recommended_budget": int,
    "description": str,
}
_OPTIONAL = {"repo": str, "chat_template": str, "embedded": bool}


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry. ``repo`` is None only for the embedded model."""

    name: str
    file: str
    quant: str
    think_tags: tuple[str, ...]
    prompt_template: str
    recommended_budget: int
    description: str
    repo: str | None = None
    chat_template: str | None = None
    embedded: bool = False

    def format_prompt(self, problem: str) -> str:
        """The math prompt for ``problem``. Literal replacement, so ``\\boxed{}`` survives."""
        return self.prompt_template.replace("{problem}", problem)

    @property
    def is_reasoning(self) -> bool:
        return bool(self.think_tags)


def registry_path() -> Path:
    """The models.toml in use (see the module docstring for the order)."""
    env = os.environ.get("RAAS_LOCAL_MODELS_TOML")
    if env:
        return Path(env).expanduser()
    if _CHECKOUT_COPY.is_file():
        return _CHECKOUT_COPY
    return _PACKAGE_COPY


def _spec_from_table(key: str, table: object, source: Path) -> ModelSpec:
    where = f"{source.name}: [{key}]"
    if not isinstance(table, dict):
        raise ModelError(f"{where} is not a table")
    unknown = set(table) - set(_REQUIRED) - set(_OPTIONAL)
    if any(isinstance(table[k], dict) for k in unknown):
        raise ModelError(f"{where}: has a sub-table; quote table names that contain dots")
    if unknown:
        raise ModelError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    for field, typ in {**_REQUIRED, **_OPTIONAL}.items():
        if field not in table:
            if field in _REQUIRED:
                raise ModelError(f"{where}: missing field '{field}'")
            continue
        value = table[field]
        # bool is an int subclass: a budget of `true` must not pass as 1.
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            raise ModelError(f"{where}: field '{field}' must be {typ.__name__}")
    if table["name"] != key:
        raise ModelError(f"{where}: name '{table['name']}' differs from the table key")
    tags = table["think_tags"]
    if len(tags) not in (0, 2) or not all(isinstance(t, str) and t for t in tags):
        raise ModelError(f"{where}: think_tags must be [] or [open, close]")
    if "{problem}" not in table["prompt_template"]:
        raise ModelError(f"{where}: prompt_template lacks the {{problem}} placeholder")
    if table["recommended_budget"] <= 0:
        raise ModelError(f"{where}: recommended_budget must be positive")
    embedded = table.get("embedded", False)
    if not embedded and not table.get("repo"):
        raise ModelError(f"{where}: needs 'repo' (only the embedded model has none)")
    if not table["file"].lower().endswith(".gguf"):
        raise ModelError(f"{where}: file must be a .gguf file")
    if table["quant"].lower() not in table["file"].lower():
        raise ModelError(f"{where}: quant '{table['quant']}' does not appear in file name")
    return ModelSpec(
        name=key,
        file=table["file"],
        quant=table["quant"],
        think_tags=tuple(tags),
        prompt_template=table["prompt_template"],
        recommended_budget=table["recommended_budget"],
        description=table["description"],
        repo=table.get("repo"),
        chat_template=table.get("chat_template"),
        embedded=embedded,
    )


@lru_cache(maxsize=8)
def _load(path: Path, mtime_ns: int) -> dict[str, ModelSpec]:
    # Keyed on mtime so an edited registry is re-read without a restart.
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ModelError(f"model registry not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise ModelError(f"model registry {path} is not valid TOML: {e}") from None
    specs = {key: _spec_from_table(key, table, path) for key, table in data.items()}
    if sum(s.embedded for s in specs.values()) > 1:
        raise ModelError(f"{path.name}: more than one entry has embedded = true")
    return specs


def _specs() -> dict[str, ModelSpec]:
    path = registry_path()
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        raise ModelError(f"model registry not found: {path}") from None
    return _load(path, mtime)


def all_models() -> list[ModelSpec]:
    """Every registry entry, in file order."""
    return list(_specs().values())


def find(name: str) -> ModelSpec | None:
    """The entry called ``name`` (case-insensitive), or None."""
    specs = _specs()
    return specs.get(name) or specs.get(name.lower())


def get(name: str) -> ModelSpec:
    """The entry called ``name``; ModelError naming the known models otherwise."""
    spec = find(name)
    if spec is None:
        known = ", ".join(_specs())
        raise ModelError(f"unknown model '{name}' (known: {known})")
    return spec


def embedded_spec() -> ModelSpec:
    for spec in _specs().values():
        if spec.embedded:
            return spec
    raise ModelError(f"{registry_path().name} has no embedded model entry")
