"""Models: the registry (models.toml), the embedded default, Hub downloads, checks.

Import cost is low: huggingface_hub and gguf are imported only when a download,
a cache scan or a tensor-size check needs them.
"""

from __future__ import annotations

from raas_local.models.embedded import embedded_model_path
from raas_local.models.hub import list_models, pull, rm
from raas_local.models.registry import ModelSpec, all_models, get
from raas_local.models.resolve import resolve_model
from raas_local.models.validate import validate_gguf

__all__ = [
    "ModelSpec",
    "all_models",
    "embedded_model_path",
    "get",
    "list_models",
    "pull",
    "resolve_model",
    "rm",
    "validate_gguf",
]
