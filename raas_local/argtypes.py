"""argparse types for counts and ratios: a bad value is argparse's one-line
usage error (exit 2), never a silently empty run (`-n -5` used to generate 0 tokens).

A leaf module: it imports nothing from raas_local, so every command's parser may use it.
"""

from __future__ import annotations

import argparse


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def positive_int(text: str) -> int:
    """A count that must be at least 1 (-n, -t, -c, --budget, --page-size, --limit, ...)."""
    v = _int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def nonneg_int(text: str) -> int:
    """A count where 0 means none (-ngl 0: no GPU layers; --n-sink 0: no sinks)."""
    v = _int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {v}")
    return v


def nonneg_float(text: str) -> float:
    """--temp and the like: 0 is meaningful (greedy), negatives are not."""
    v = _float(text)
    if not v >= 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return v


def unit_ratio(text: str) -> float:
    """A share in (0, 1]: --top-p, --refresh-ratio, --heavy-ratio."""
    v = _float(text)
    if not 0 < v <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return v


def positive_int_list(text: str) -> list[int]:
    """Comma-separated positive integers, duplicates dropped, order kept (--budgets 256,512)."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("empty list")
    return list(dict.fromkeys(positive_int(t) for t in items))


def positive_float(text: str) -> float:
    """A duration or size that must be above 0 (--check-timeout)."""
    v = _float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return v


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a usage error is one `raas-local: error: ...` line (exit 2) like every other
    user error, pointing at --help instead of dumping the whole usage block."""

    def error(self, message: str):
        import sys

        sys.stderr.write(f"raas-local: error: {message} (see: {self.prog} --help)\n")
        raise SystemExit(2)
