"""A fake Hugging Face Hub on 127.0.0.1, shared by tests/models and the Ray tests.

See tests/models/conftest.py for what it answers and how the tests point
huggingface_hub at it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def commit_of(repo_id: str) -> str:
    return hashlib.sha1(repo_id.encode()).hexdigest()


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


@contextmanager
def serve_fake_hub():
    """A running FakeHub (ephemeral port on 127.0.0.1), shut down on exit."""
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
