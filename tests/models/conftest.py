"""Fixtures for tests/models: tiny GGUF files and a fake Hugging Face Hub.

The fake hub (tests/fake_hub.py) is a threading ``http.server`` on 127.0.0.1 (ephemeral port,
shut down by the fixture) that answers the two endpoints huggingface_hub uses
here, as read in huggingface_hub 2.4.0's file_download.py / hf_api.py:

- ``HEAD|GET /{org}/{repo}/resolve/{revision}/{filename}``: headers
  ``X-Repo-Commit``, ``ETag``, ``Content-Length`` and, for LFS files,
  ``X-Linked-Etag`` (the sha256) and ``X-Linked-Size``; 404s carry
  ``X-Error-Code: RepoNotFound|EntryNotFound`` as the Hub does;
- ``GET /api/models/{org}/{repo}/tree/{revision}``: the JSON file listing
  behind ``HfApi().list_repo_files``.

It counts requests, and can serve bytes that differ from what it advertises
(corrupt or truncated downloads). The ``hub`` fixture points huggingface_hub
at it by patching ``huggingface_hub.constants`` (ENDPOINT, the resolve-URL
template, HF_HUB_CACHE, HF_HUB_OFFLINE), which the library reads at call time;
one test in test_models_hub.py also drives the real environment variables in
a subprocess.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_hub import FakeHub, serve_fake_hub
from models_testutil import write_gguf


@pytest.fixture
def gguf_bytes(tmp_path: Path) -> bytes:
    return write_gguf(tmp_path / "_src.gguf").read_bytes()


@pytest.fixture
def fake_hub():
    with serve_fake_hub() as hub:
        yield hub


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """RAAS_LOCAL_HOME and HF_HOME under tmp_path; the real caches are never touched."""
    monkeypatch.setenv("RAAS_LOCAL_HOME", str(tmp_path / "raas"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return tmp_path


@pytest.fixture
def hub(fake_hub: FakeHub, home: Path, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    """huggingface_hub pointed at the fake hub, with its cache in tmp_path, online."""
    import huggingface_hub.constants as c

    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setattr(c, "ENDPOINT", fake_hub.url)
    monkeypatch.setattr(c, "HUGGINGFACE_CO_URL_TEMPLATE", fake_hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(home / "hf" / "hub"))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(c, "HF_HUB_ETAG_TIMEOUT", 5)
    return fake_hub


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
