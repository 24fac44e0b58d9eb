"""Turn the MODEL argument of run/chat/solve/bench into a checked GGUF path.

``resolve_model(arg)``:
- ``None``: the embedded default model (placed and verified on first use);
- an existing path (an existing path wins over a registry name, as with
  llama.cpp's ``-m``), or anything ending in ``.gguf`` or starting with ``/``,
  ``./``, ``../``, ``~`` (but not ``org/repo:QUANT``): that file, validated
  (a missing one is ``model file not found: ...``);
- a registry name (``qwen3-4b``, ``qwen3-4b:Q8_0``) or ``org/repo[:quant]``:
  the file in the Hugging Face cache, verified and validated.

Decision: resolving never downloads. A model that is not in the cache is a
ModelError that names the command to run (``raas-local models pull NAME``),
so a typo or a slow network never starts a multi-gigabyte transfer behind the
user's back, and the same command works offline once pulled.
"""

from __future__ import annotations

import os
from pathlib import Path

from raas_local.errors import ModelError
from raas_local.models import hub
from raas_local.models.embedded import embedded_model_path
from raas_local.models.registry import ModelSpec, embedded_spec
from raas_local.models.validate import validate_gguf


def _looks_like_path(arg: str) -> bool:
    if ":" in arg and hub.is_hub_ref(arg):  # org/repo:file.gguf is a hub ref, not a path
        return False
    return (
        arg.lower().endswith(".gguf")
        or arg.startswith(("/", "./", "../", "~"))
        or (os.sep in arg and Path(arg).expanduser().exists())
    )


def is_path_arg(arg: str) -> bool:
    """Whether MODEL names a file rather than a registry name or hub ref (an existing path wins)."""
    return _looks_like_path(arg) or Path(arg).expanduser().exists()


def resolve_model(arg: str | os.PathLike[str] | None) -> tuple[Path, ModelSpec | None]:
    """(path of a checked GGUF, its registry entry or None for a plain file)."""
    if arg is None:
        return embedded_model_path(), embedded_spec()
    text = os.fspath(arg)
    if isinstance(arg, os.PathLike) or is_path_arg(text):
        path = Path(text).expanduser()
        validate_gguf(path)  # missing path -> "model file not found: ..."
        return path, None
    ref = hub.parse_ref(text)
    if ref.spec is not None and ref.spec.embedded:
        return embedded_model_path(), ref.spec
    cached = hub.locate_cached(ref)
    if cached is None:
        where = " (HF_HUB_OFFLINE is set, so pull it where the network is reachable)" if hub.is_offline() else ""
        raise ModelError(f"model '{ref.label}' is not downloaded; run: raas-local models pull {ref.label}{where}")
    return hub.checked(cached, ref.label), ref.spec
