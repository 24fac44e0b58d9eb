"""Slash commands typed in the chat input between turns.

Decision: parsing is pure (text -> Command or CommandError) so it is tested
without an app; the app decides what each command does to the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

_HELP = """\
**Commands**

| command | does |
|---|---|
| `/budget N` | set the KV budget to N cells (clears the cache; the chat is kept and re-read next turn) |
| `/policy NAME` | switch the cache policy: {kinds} |
| `/new` | start a new conversation |
| `/help` | show this help |
| `/quit` | leave |

**Keys**: `Esc` stop generating · `Ctrl+N` new chat · `Ctrl+Q` quit · scroll up to stop following the reply, scroll to the bottom to follow again.
"""


def help_text() -> str:
    """The help note, listing the policy kinds this install registers."""
    from raas_local.policies import KINDS

    return _HELP.format(kinds=", ".join(f"`{k}`" for k in sorted(KINDS)))


class CommandError(ValueError):
    """A malformed command; the message is shown to the user as is."""


@dataclass(frozen=True)
class Command:
    name: str                 # "budget", "policy", "new", "help", "quit"
    value: int | str | None = None


NAMES = ("budget", "policy", "new", "help", "quit")


def is_command(text: str) -> bool:
    return text.lstrip().startswith("/")


def parse_command(text: str) -> Command:
    words = text.strip()[1:].split()
    if not words:
        raise CommandError("empty command; try /help")
    name, rest = words[0].lower(), words[1:]
    if name not in NAMES:
        raise CommandError(f"unknown command /{name}; try /help")
    if name == "budget":
        if len(rest) != 1:
            raise CommandError("usage: /budget N (KV cells, prompt included)")
        try:
            n = int(rest[0])
        except ValueError:
            raise CommandError(f"/budget needs a whole number of cells, got {rest[0]!r}") from None
        if n <= 0:
            raise CommandError(f"/budget needs a positive number of cells, got {n}")
        return Command("budget", n)
    if name == "policy":
        if len(rest) != 1:
            raise CommandError("usage: /policy NAME (e.g. raas or dense)")
        return Command("policy", rest[0].lower())  # CachePolicy validates the name
    if rest:
        raise CommandError(f"/{name} takes no arguments")
    return Command(name)
