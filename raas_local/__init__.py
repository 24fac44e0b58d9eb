"""raas-local: GGUF reasoning models with a RaaS KV cache in llama.cpp.

The public API is ``Engine`` and ``CachePolicy``.  They are loaded lazily so
that pure-Python parts (answer extraction, the model registry) import without
the native library; touching ``Engine`` loads the patched libllama and checks
it (raas_local.native).
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Engine", "CachePolicy"]


def __getattr__(name: str):
    if name == "Engine":
        from raas_local.engine import Engine

        return Engine
    if name == "CachePolicy":
        from raas_local.policies import CachePolicy

        return CachePolicy
    raise AttributeError(f"module 'raas_local' has no attribute {name!r}")
