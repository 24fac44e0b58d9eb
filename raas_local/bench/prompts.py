"""The fidelity suite's prompts: the default one, --prompt TEXT, or --prompts FILE (JSONL).

A prompts file has one JSON object per line: ``{"id": "...", "prompt": "..."}``
and optionally ``"held_out": true``. Held-out prompts are measured like the
others but averaged apart, so that a choice made on the sweep prompts can be
checked on prompts it was not made on. Prompts are raw text (no chat template),
short enough to leave the small budgets room to decode in; the suite refuses a
budget that a prompt does not fit before it measures anything.

A prompt's store key is its id and a digest of its text: editing a prompt in
the file measures it again rather than reusing the old text's records.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from raas_local.errors import InputError

PROMPT = "Question: What is 17*23? Think step by step.\nAnswer:"
BUNDLED = Path(__file__).parent / "data" / "fidelity_prompts.jsonl"
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # it names files: fidelity-ref-<id>-<N>.json


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str
    held_out: bool = False

    @property
    def sha(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:8]

    @property
    def key(self) -> tuple[str, str]:
        """(id, text digest): the prompt's part of a record's store key."""
        return (self.id, self.sha)


def single(text: str) -> Prompt:
    """--prompt TEXT, or the default prompt: one prompt, id ``prompt``."""
    return Prompt("prompt", text)


def load(path) -> list[Prompt]:
    """A prompts file; any bad line is a one-line error naming the file and line."""
    p = Path(path)
    try:
        lines = p.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read prompts file {p}: {e}") from None
    out: list[Prompt] = []
    seen: set[str] = set()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{p}:{n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{where}: not JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise InputError(f"{where}: expected an object with \"id\" and \"prompt\"")
        pid, text, held = obj.get("id"), obj.get("prompt"), obj.get("held_out", False)
        if not isinstance(pid, str) or not ID_RE.match(pid):
            raise InputError(f"{where}: \"id\" must be a short name of letters, digits, '_', '-' or '.', got {pid!r}")
        if pid in seen:
            raise InputError(f"{where}: id {pid!r} appears twice")
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{where}: \"prompt\" must be non-empty text")
        if not isinstance(held, bool):
            raise InputError(f"{where}: \"held_out\" must be true or false, got {held!r}")
        seen.add(pid)
        out.append(Prompt(pid, text, held))
    if not out:
        raise InputError(f"prompts file {p} has no prompts")
    return out
