"""Where raas-local keeps its files.

Everything lives under one cache root so that a user can see and delete it:
``$RAAS_LOCAL_HOME`` if set, else ``$XDG_CACHE_HOME/raas-local``, else
``~/.cache/raas-local``.  Hugging Face downloads stay in huggingface-hub's own
standard cache (``$HF_HOME``), not here.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_home() -> Path:
    env = os.environ.get("RAAS_LOCAL_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "raas-local"


def models_dir() -> Path:
    """Model files that do not come from the hub (the embedded default)."""
    return cache_home() / "models"

