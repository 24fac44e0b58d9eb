"""results.json: every record measured so far, keyed so a repeated command resumes.

A record's key is (suite, model, policy, budget, page size, length, settings,
prompt, prompt digest): what changes what is measured. ``settings`` holds every
setting of the policy (bench/variants.py), so a variant or a changed default
is a run of its own; prompt and digest are the fidelity prompt's id and text
(None for the other suites). Window and repetitions of the speed suite are not
in it (they change the noise, not the quantity); --force remeasures. Records
written before a key field was stored have None there, so they never match a
new request and are simply measured again.
The file is rewritten atomically after every record, so a stopped run loses at
most the record in progress.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from raas_local.errors import InputError

KEY_FIELDS = ("suite", "model", "policy", "budget", "page_size", "length", "settings", "prompt", "prompt_sha")


def key(r: dict) -> tuple:
    """The record's key, as Plan.key builds it for a request."""
    from raas_local.bench.variants import settings_key

    return tuple(settings_key(r.get(f)) if f == "settings" else r.get(f) for f in KEY_FIELDS)


def _read(path: Path) -> list[dict]:
    """The records of an existing results.json; a file that is not a list of records is the user's to fix or remove."""
    try:
        records = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path} is not valid JSON ({e}); fix it, or move it away to measure everything again") from None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise InputError(f"{path} is not a list of bench records; fix it, or move it away to measure everything again")
    return records


class Store:
    def __init__(self, path: Path, force: bool = False):
        self.path = Path(path)
        self.records: list[dict] = _read(self.path) if self.path.exists() else []
        self._by_key = {key(r): r for r in self.records}
        # --force remeasures what this command asks for; other records are kept
        self._fresh: set[tuple] | None = set() if force else None
        self.force = force

    def has(self, k: tuple) -> bool:
        if self._fresh is not None and k not in self._fresh:
            return False
        return k in self._by_key

    def add(self, rec: dict) -> None:
        k = key(rec)
        self.records = [r for r in self.records if key(r) != k] + [rec]
        self._by_key[k] = rec
        if self._fresh is not None:
            self._fresh.add(k)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.records, indent=1) + "\n")
        os.replace(tmp, self.path)

    def get(self, k: tuple) -> dict | None:
        return self._by_key.get(k)
