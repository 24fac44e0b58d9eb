"""native/build.py on a small fake sdist: checksum, patch failures, the wheel cache."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "native" / "build.py"

PYPROJECT = """\
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "llama_cpp_python"
dynamic = ["version"]

[tool.setuptools]
packages = ["llama_cpp"]

[tool.setuptools.dynamic]
version = {attr = "llama_cpp.__version__"}
"""

SOURCE = "".join(f"line {i}\n" for i in range(1, 21))


def patch_text(old: str, new: str, line: int = 5) -> str:
    ctx_before = [f"line {i}" for i in range(line - 3, line)]
    ctx_after = [f"line {i}" for i in range(line + 1, line + 4)]
    body = [f" {c}" for c in ctx_before] + [f"-{old}", f"+{new}"] + [f" {c}" for c in ctx_after]
    return (
        "diff --git a/src/a.txt b/src/a.txt\n--- a/src/a.txt\n+++ b/src/a.txt\n"
        f"@@ -{line - 3},7 +{line - 3},7 @@\n" + "\n".join(body) + "\n"
    )


def make_sdist(tmp: Path) -> Path:
    path = tmp / "llama_cpp_python-0.3.36.tar.gz"
    files = {
        "pyproject.toml": PYPROJECT,
        "llama_cpp/__init__.py": '__version__ = "0.3.36"\n',
        "vendor/llama.cpp/src/a.txt": SOURCE,
        # the real sdist ships a submodule .git file that points nowhere
        "vendor/llama.cpp/.git": "gitdir: ../../.git/modules/vendor/llama.cpp\n",
    }
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"llama_cpp_python-0.3.36/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def setup(tmp_path):
    sdist = make_sdist(tmp_path)
    patches = tmp_path / "patches"
    patches.mkdir()
    (patches / "0001-first.patch").write_text(patch_text("line 5", "line five"))
    native = tmp_path / "native"
    native.mkdir()
    (native / "raas-x.cpp").write_text("int raas_x() { return 1; }\n")
    sha = hashlib.sha256(sdist.read_bytes()).hexdigest()
    return tmp_path, sdist, sha, patches, native


def build(tmp, sdist, sha, patches, native):
    cmd = [sys.executable, str(BUILD), "--sdist", str(sdist), "--sdist-sha256", sha, "--patches", str(patches),
           "--native", str(native), "--cache-dir", str(tmp / "cache"), "--no-build-isolation"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_wrong_sha256_is_refused(setup):
    tmp, sdist, sha, patches, native = setup
    r = build(tmp, sdist, "0" * 64, patches, native)
    assert r.returncode == 1
    assert "expected " + "0" * 64 in r.stderr and "refusing to build" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp / "cache" / "wheels").exists()


def test_patch_that_does_not_apply_names_patch_file_and_hunk(setup):
    tmp, sdist, sha, patches, native = setup
    (patches / "0002-bad.patch").write_text(patch_text("line 12 that is not there", "x", line=12))
    r = build(tmp, sdist, sha, patches, native)
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last == "native/build: error: patch 0002-bad.patch does not apply: src/a.txt, hunk #1 (line 9)", last


def test_cache_miss_then_hit_then_miss_after_a_patch_changes(setup):
    tmp, sdist, sha, patches, native = setup
    first = build(tmp, sdist, sha, patches, native)
    assert first.returncode == 0, first.stderr
    assert "cache miss" in first.stderr
    wheel = Path(first.stdout.strip().splitlines()[-1])
    assert wheel.exists() and "0.3.36+raas." in wheel.name

    # the work tree got the patch and the native sources, and lost the dangling .git file
    vendor = tmp / "cache" / "build" / "cpu" / "llama_cpp_python-0.3.36" / "vendor" / "llama.cpp"
    assert "line five" in (vendor / "src" / "a.txt").read_text()
    assert (vendor / "src" / "raas" / "raas-x.cpp").exists()
    assert not (vendor / ".git").exists()

    again = build(tmp, sdist, sha, patches, native)
    assert again.returncode == 0 and "cache hit" in again.stderr
    assert Path(again.stdout.strip().splitlines()[-1]) == wheel

    (patches / "0001-first.patch").write_text(patch_text("line 5", "line FIVE"))
    changed = build(tmp, sdist, sha, patches, native)
    assert changed.returncode == 0 and "cache miss" in changed.stderr
    assert Path(changed.stdout.strip().splitlines()[-1]).parent != wheel.parent

    (native / "raas-x.cpp").write_text("int raas_x() { return 2; }\n")
    native_changed = build(tmp, sdist, sha, patches, native)
    assert "cache miss" in native_changed.stderr


# -- the real sdist: download and verify (needs PyPI; deselect offline with -m "not network") --


def _fetch(cache: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BUILD), "--fetch-only", "--cache-dir", str(cache)],
                          capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.network
def test_real_sdist_downloads_into_an_empty_cache_and_verifies(tmp_path):
    """What a new machine does first: pip fetches the pinned sdist, whose sha256 must match."""
    r = _fetch(tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    sdist = Path(r.stdout.strip().splitlines()[-1])
    assert sdist.name == "llama_cpp_python-0.3.36.tar.gz" and sdist.parent == tmp_path / "cache" / "sdist"
    expected = (ROOT / "native" / "sdist.sha256").read_text().split()[0]
    assert hashlib.sha256(sdist.read_bytes()).hexdigest() == expected
    assert "downloading" in r.stderr
    # a second fetch uses the cached file: no network, same path
    again = _fetch(tmp_path / "cache", env={**_no_network_pip_env(), "PATH": "/usr/bin:/bin"})
    assert again.returncode == 0, again.stderr
    assert Path(again.stdout.strip().splitlines()[-1]) == sdist and "downloading" not in again.stderr


def _no_network_pip_env() -> dict:
    """pip pointed at a closed loopback port, with no config file, find-links or extra index."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_INDEX_URL="http://127.0.0.1:9/simple", PIP_RETRIES="0",
               PIP_TIMEOUT="2", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def test_failed_download_is_one_line_naming_pips_cause_and_its_log(tmp_path):
    r = _fetch(tmp_path / "cache", env=_no_network_pip_env())
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("native/build: error: could not download the llama-cpp-python==0.3.36 sdist: ")
    assert "See above" not in last and "hint:" not in last
    # pip's own reason, not a placeholder
    assert "No matching distribution" in last or "Could not find a version" in last, last
    log = Path(last.rsplit("pip's output: ", 1)[1].rstrip(")"))
    assert log.is_file() and "127.0.0.1:9" in log.read_text()
