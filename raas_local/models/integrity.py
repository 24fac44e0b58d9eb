"""sha256 checks that are paid once per file, not once per load.

A verified file gets a small JSON marker recording the digest together with
the file's (size, mtime_ns, inode). Later checks compare ``os.stat`` against
the marker and skip hashing while they match; any rewrite, replacement or
truncation of the file changes the stat triple, and the file is hashed again.
Markers are written atomically so a crash never leaves a half marker that
would vouch for anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

_CHUNK = 1 << 20
_SHA256_RE = re.compile(r"[0-9a-f]{64}")


def is_sha256(text: str) -> bool:
    return bool(_SHA256_RE.fullmatch(text))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _signature(path: Path) -> dict[str, int]:
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}


def marker_ok(path: Path, marker: Path, expected: str) -> bool:
    """True if ``marker`` vouches that ``path``, as it is now, hashes to ``expected``."""
    try:
        data = json.loads(marker.read_text())
        return data.get("sha256") == expected and data.get("stat") == _signature(path)
    except (OSError, ValueError, AttributeError):
        return False


def write_marker(path: Path, marker: Path, digest: str) -> None:
    marker.parent.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_name(f".{marker.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"sha256": digest, "stat": _signature(path)}))
    os.replace(tmp, marker)


def verify_once(path: Path, expected: str, marker: Path) -> str | None:
    """None if ``path`` hashes to ``expected`` (hashing only without a valid marker),
    else the digest actually found. A mismatch removes the marker."""
    if marker_ok(path, marker, expected):
        return None
    digest = sha256_file(path)
    if digest != expected:
        marker.unlink(missing_ok=True)
        return digest
    write_marker(path, marker, digest)
    return None
