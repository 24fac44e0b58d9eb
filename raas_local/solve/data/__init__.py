"""Package data for raas_local.solve: ``sample.jsonl``, a small hand-written
problem set (GSM8K-style word problems and MATH-style problems, with gold
answers checked by hand).  A package of its own so that setuptools'
``package-data`` pattern ``*.jsonl`` ships it."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["sample_path"]


def sample_path() -> Path:
    """Path of the shipped ``sample.jsonl``."""
    return Path(str(files(__name__).joinpath("sample.jsonl")))
