"""The command line is built from every subcommand's module; none of them may go missing in silence."""

from __future__ import annotations

import subprocess
import sys

from raas_local.cli import build_parser


def test_every_subcommand_is_there():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == {"run", "chat", "solve", "bench", "models"}


def test_a_subcommand_that_fails_to_import_fails_the_command_line():
    # a broken bench module used to drop `bench` from the parser without a word
    code = ("import sys; sys.modules['raas_local.bench.cli'] = None\n"
            "import raas_local.cli")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "import of raas_local.bench.cli halted" in r.stderr, r.stderr


def test_shared_modules_do_not_import_the_command_line():
    """flags.py and what the commands share import none of the commands (no cycle through cli.py)."""
    code = ("import sys, raas_local.flags, raas_local.policies, raas_local.sampling, raas_local.thinking\n"
            "print(sorted(m for m in sys.modules if m.startswith('raas_local.') and m.split('.')[1] in "
            "('cli', 'run', 'solve', 'bench', 'tui', 'engine', 'native')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
