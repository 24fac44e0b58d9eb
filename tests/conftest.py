"""Shared fixtures: tiny generated GGUF models and the embedded default model."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))  # tiny_gguf, reference/


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
