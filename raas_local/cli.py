"""raas-local command line: run, chat, solve, bench, models.

Each subcommand's module adds its parser; the flags they share are in
raas_local/flags.py. User errors print one line, ``raas-local: error: ...``,
and exit with the error's code; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import sys

from raas_local import run
from raas_local.argtypes import OneLineErrorParser
from raas_local.bench import cli as bench_cli
from raas_local.errors import RaasError
from raas_local.models import cli as models_cli
from raas_local.solve import cli as solve_cli
from raas_local.tui import cli as chat_cli

SUBCOMMANDS = (run, models_cli, solve_cli, bench_cli, chat_cli)


def build_parser() -> argparse.ArgumentParser:
    ap = OneLineErrorParser(prog="raas-local", description="GGUF reasoning models with a RaaS KV cache")
    sub = ap.add_subparsers(dest="command", required=True)
    for mod in SUBCOMMANDS:
        mod.add_parser(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    try:
        return args.func(args) or 0
    except RaasError as e:
        print(f"raas-local: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("\nraas-local: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
