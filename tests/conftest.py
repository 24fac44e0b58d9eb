"""Shared fixtures: tiny generated GGUF models and the embedded default model."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))  # tiny_gguf, reference/


def pytest_sessionstart(session):
    """Stop at once, with the rebuild command, when the native library is not this checkout's build:
    every test would otherwise run against the old one (or fail to import, each with a traceback)."""
    from raas_local.errors import NativeLibraryError

    try:
        import raas_local.native  # noqa: F401
    except NativeLibraryError as e:
        pytest.exit(f"raas-local: error: {e}", returncode=NativeLibraryError.exit_code)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    """(path, TinyConfig with weights) of a 2-layer f32 llama model with GQA."""
    from tiny_gguf import write_llama

    path = tmp_path_factory.mktemp("models") / "tiny-llama.gguf"
    cfg = write_llama(path)
    return path, cfg


@pytest.fixture(scope="session")
def tiny_gemma3(tmp_path_factory):
    from tiny_gguf import write_gemma3

    path = tmp_path_factory.mktemp("models") / "tiny-gemma3.gguf"
    write_gemma3(path)
    return path


@pytest.fixture(scope="session")
def embedded_model():
    from raas_local.models import embedded_model_path

    return embedded_model_path()
