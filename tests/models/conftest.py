"""Fixtures for tests/models: tiny GGUF files and a fake Hugging Face Hub.

The fake hub is a threading ``http.server`` on 127.0.0.1 (ephemeral port,
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

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from models_testutil import write_gguf


def commit_of(repo_id: str) -> str:
    return hashlib.sha1(repo_id.encode()).hexdigest()


@pytest.fixture
def gguf_bytes(tmp_path: Path) -> bytes:
    return write_gguf(tmp_path / "_src.gguf").read_bytes()


@dataclass
class HubFile:
    content: bytes  # what the file really is (advertised size/etag come from it)
    lfs: bool = True
    served: bytes | None = None  # what GET sends instead, to simulate damage
    etag: str | None = None  # override (default: sha256 for LFS, git sha1 otherwise)
    advertise_served_size: bool = False  # HEAD advertises len(served) instead of len(content)

    def body(self) -> bytes:
        return self.content if self.served is None else self.served

    def etag_value(self) -> str:
        if self.etag is not None:
            return self.etag
        if self.lfs:
            return hashlib.sha256(self.content).hexdigest()
        return hashlib.sha1(b"blob %d\0" % len(self.content) + self.content).hexdigest()

    def size(self) -> int:
        return len(self.body()) if self.advertise_served_size else len(self.content)


@dataclass
class FakeHub:
    url: str = ""
    repos: dict[str, dict[str, HubFile]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, repo_id: str, filename: str, content: bytes, **kw) -> HubFile:
        f = HubFile(content, **kw)
        self.repos.setdefault(repo_id, {})[filename] = f
        return f

    def count(self, method: str, needle: str = "") -> int:
        with self.lock:
            return sum(1 for m, p in self.requests if m == method and needle in p)


def _handler(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep pytest output clean
            pass

        def _send(self, code: int, headers: dict[str, str], body: bytes = b"") -> None:
            self.send_response(code)
            for k, v in headers.items():
                self.send_header(k, v)
            if "Content-Length" not in headers:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD" and body:
                self.wfile.write(body)

        def _route(self) -> None:
            path = self.path.split("?", 1)[0]
            with hub.lock:
                hub.requests.append((self.command, path))
            parts = path.strip("/").split("/")
            if len(parts) >= 5 and parts[2] == "resolve":
                self._resolve(f"{parts[0]}/{parts[1]}", "/".join(parts[4:]))
            elif len(parts) >= 6 and parts[:2] == ["api", "models"] and parts[4] == "tree":
                self._tree(f"{parts[2]}/{parts[3]}")
            else:
                self._send(404, {"X-Error-Code": "RepoNotFound"}, b"not found")

        def _resolve(self, repo_id: str, filename: str) -> None:
            files = hub.repos.get(repo_id)
            if files is None:
                return self._send(404, {"X-Error-Code": "RepoNotFound"}, b"Repository not found")
            f = files.get(filename)
            if f is None:
                return self._send(
                    404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit_of(repo_id)}, b"Entry not found"
                )
            headers = {"X-Repo-Commit": commit_of(repo_id), "ETag": f'"{f.etag_value()}"', "Accept-Ranges": "bytes"}
            if f.lfs:
                headers["X-Linked-Etag"] = f'"{f.etag_value()}"'
                headers["X-Linked-Size"] = str(f.size())
            if self.command == "HEAD":
                headers["Content-Length"] = str(f.size())
                return self._send(200, headers)
            self._send(200, headers, f.body())

        def _tree(self, repo_id: str) -> None:
            files = hub.repos.get(repo_id)
            if files is None:
                return self._send(404, {"X-Error-Code": "RepoNotFound"}, b"Repository not found")
            listing = [
                {"type": "file", "path": name, "size": len(f.content), "oid": hashlib.sha1(f.content).hexdigest()}
                for name, f in files.items()
            ]
            self._send(200, {"Content-Type": "application/json"}, json.dumps(listing).encode())

        do_GET = do_HEAD = _route

    return Handler


@pytest.fixture
def fake_hub():
    hub = FakeHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


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
