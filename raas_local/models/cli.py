"""``raas-local models list|pull|rm``: argparse wiring for raas_local/cli.py.

raas_local/cli.py calls ``add_parser(subparsers)`` once and, for the ``models``
command, ``run(args)``. Failures raise ModelError; the top-level ``main()``
prints it as one line and exits with its code.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from raas_local.errors import ModelError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``models`` (with ``list``, ``pull``, ``rm``) to an argparse subparsers object."""
    p = subparsers.add_parser(
        "models",
        help="list, download or remove models",
        description="Models come from models.toml (registry names) or any Hugging Face GGUF repo "
        "(org/repo[:quant]); downloads use the huggingface_hub cache.",
    )
    sub = p.add_subparsers(dest="models_command", metavar="{list,pull,rm}")
    sub.add_parser("list", help="registry models and cached GGUFs, installed or not")
    pull = sub.add_parser("pull", help="download a model (registry name or org/repo[:quant])")
    pull.add_argument("model", metavar="NAME|org/repo[:quant]")
    rm = sub.add_parser("rm", help="remove a downloaded model from the cache")
    rm.add_argument("model", metavar="NAME|org/repo[:quant]")
    p.set_defaults(func=run)
    return p


def _human(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover


def _print_list() -> None:
    from rich.console import Console
    from rich.table import Table

    from raas_local.models.hub import list_models

    table = Table(title="raas-local models", title_justify="left")
    for col in ("name", "installed", "size"):
        table.add_column(col, no_wrap=True)
    for col in ("path", "repo/file"):
        table.add_column(col, overflow="fold")
    for row in list_models():
        source = f"{row['repo']}/{row['file']}" if row["repo"] else f"(embedded) {row['file']}"
        table.add_row(
            row["name"],
            "[green]yes[/]" if row["installed"] else "no",
            _human(row["size"]),
            str(row["path"]) if row["path"] else "-",
            source,
        )
    Console().print(table)


def run(args: argparse.Namespace) -> int:
    """Execute ``models <command>``; returns the exit code (errors raise ModelError)."""
    command = getattr(args, "models_command", None)
    if command in (None, "list"):
        _print_list()
        return 0
    if command == "pull":
        from raas_local.models.hub import pull

        path = pull(args.model)
        print(path)
        return 0
    if command == "rm":
        from raas_local.models.hub import rm

        for path in rm(args.model):
            print(f"removed {path}")
        return 0
    raise ModelError(f"unknown models command: {command}")


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (``python -m raas_local.models.cli``), used by tests and for debugging."""
    parser = argparse.ArgumentParser(prog="raas-local")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ModelError as e:
        print(f"raas-local: error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
