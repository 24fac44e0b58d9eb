"""pull / rm / list_models against a fake Hub on 127.0.0.1 (see conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from raas_local.errors import ModelError
from raas_local.models import hub as hubmod
from raas_local.models import list_models, pull, resolve_model, rm, validate_gguf

REPO = "test-org/Tiny-GGUF"
FILE = "Tiny-Q4_K_M.gguf"
ROOT = Path(__file__).resolve().parents[2]


def _blobs(home: Path) -> list[Path]:
    return [p for p in (home / "hf" / "hub").rglob("blobs/*") if p.is_file()]


def _one_line_error(fn, *args) -> str:
    with pytest.raises(ModelError) as e:
        fn(*args)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_pull_downloads_a_valid_file_into_the_hf_cache(hub, home, gguf_bytes):
    hub.add(REPO, FILE, gguf_bytes)
    path = pull(REPO)
    assert path.name == FILE and path.read_bytes() == gguf_bytes
    assert (home / "hf" / "hub") in path.parents
    validate_gguf(path)
    assert hub.count("GET", "/resolve/") == 1


def test_second_pull_reuses_the_cache(hub, home, gguf_bytes):
    hub.add(REPO, FILE, gguf_bytes)
    first = pull(REPO)
    second = pull(REPO)
    assert first == second
    assert hub.count("GET", "/resolve/") == 1  # only HEAD the second time
    assert hub.count("HEAD", "/resolve/") == 2


def test_quant_selection_uses_the_repo_listing(hub, gguf_bytes):
    for name in ("Tiny-Q4_0.gguf", "Tiny-Q4_0_4_4.gguf", "Tiny-Q8_0.gguf", "mmproj-Tiny-Q8_0.gguf"):
        hub.add(REPO, name, gguf_bytes)
    assert pull(f"{REPO}:q8_0").name == "Tiny-Q8_0.gguf"  # case-insensitive, mmproj skipped
    assert pull(f"{REPO}:Q4_0").name == "Tiny-Q4_0.gguf"  # a name ending in the quant wins
    assert hub.count("GET", "/api/models/") == 2
    assert "no GGUF matching 'Q5_K_M'" in _one_line_error(pull, f"{REPO}:Q5_K_M")


def test_pick_file_rules():
    files = ["a-Q4_K_S.gguf", "a-Q4_K_M.gguf", "a-00001-of-00002.gguf", "README.md"]
    assert hubmod.pick_file(files, None, "o/r") == "a-Q4_K_M.gguf"
    assert hubmod.pick_file(["b-Q8_0.gguf", "a-Q6_K.gguf"], None, "o/r") == "a-Q6_K.gguf"
    with pytest.raises(ModelError, match="ambiguous"):
        hubmod.pick_file(files, "Q4_K", "o/r")
    with pytest.raises(ModelError, match="no single-file GGUF"):
        hubmod.pick_file(["a-00001-of-00002.gguf"], None, "o/r")


def test_registry_name_pulls_its_file(hub, gguf_bytes):
    hub.add("Qwen/Qwen3-0.6B-GGUF", "Qwen3-0.6B-Q8_0.gguf", gguf_bytes)
    path = pull("qwen3-0.6b")
    assert path.name == "Qwen3-0.6B-Q8_0.gguf"
    assert hub.count("GET", "/api/") == 0  # the registry knows the file: no listing
    assert resolve_model("qwen3-0.6b")[1].name == "qwen3-0.6b"


def test_unknown_repo_and_missing_file_are_one_line_errors(hub, gguf_bytes):
    assert "repository not found" in _one_line_error(pull, "nobody/nothing-GGUF")
    hub.add(REPO, "Other-Q8_0.gguf", gguf_bytes)
    hub.add("Qwen/Qwen3-4B-GGUF", "something-else.gguf", gguf_bytes)
    assert "file not found" in _one_line_error(pull, "qwen3-4b")


def test_offline_with_cached_file_works(hub, home, gguf_bytes, monkeypatch):
    hub.add(REPO, FILE, gguf_bytes)
    online = pull(REPO)
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    before = len(hub.requests)
    assert pull(REPO) == online
    assert resolve_model(REPO)[0] == online
    assert len(hub.requests) == before  # offline means no request at all


def test_offline_without_cached_file_says_what_to_run(hub, offline):
    msg = _one_line_error(pull, "qwen3-0.6b")
    assert "HF_HUB_OFFLINE" in msg and "raas-local models pull qwen3-0.6b" in msg
    assert hub.requests == []


def test_corrupt_download_is_detected_deleted_and_never_returned(hub, home, gguf_bytes):
    # Same size, wrong bytes: huggingface_hub only checks the size, our sha256 check catches it.
    damaged = bytearray(gguf_bytes)
    damaged[-1] ^= 0xFF
    hub.add(REPO, FILE, gguf_bytes, served=bytes(damaged))
    msg = _one_line_error(pull, REPO)
    assert "corrupt" in msg and "sha256" in msg and f"raas-local models pull {REPO}" in msg
    assert _blobs(home) == [] and hubmod.locate_cached(hubmod.parse_ref(REPO)) is None
    assert "not downloaded" in _one_line_error(resolve_model, REPO)
    # Fixed on the server: the next pull downloads and verifies it.
    hub.repos[REPO][FILE].served = None
    assert pull(REPO).read_bytes() == gguf_bytes


def test_interrupted_download_is_not_cached(hub, home, gguf_bytes):
    # The server advertises the full size but sends half the file.
    hub.add(REPO, FILE, gguf_bytes, served=gguf_bytes[: len(gguf_bytes) // 2])
    msg = _one_line_error(pull, REPO)
    assert "run the pull again" in msg
    assert _blobs(home) == []
    assert not list((home / "hf" / "hub").rglob("*.incomplete"))


def test_truncated_git_file_fails_its_sha1(hub, home, gguf_bytes):
    # A non-LFS file served (consistently) truncated: its git-sha1 ETag does not match.
    hub.add(REPO, FILE, gguf_bytes, lfs=False, served=gguf_bytes[:-8], advertise_served_size=True)
    assert "git sha1" in _one_line_error(pull, REPO)
    assert _blobs(home) == []


def test_truncated_file_without_checkable_etag_fails_validation(hub, home, gguf_bytes):
    hub.add(REPO, FILE, gguf_bytes, lfs=False, etag="weak-etag-1", served=gguf_bytes[:-8],
            advertise_served_size=True)
    assert "truncated GGUF" in _one_line_error(pull, REPO)
    assert _blobs(home) == []


def test_damaged_cached_blob_is_caught_at_resolve_and_replaced_by_pull(hub, home, gguf_bytes):
    hub.add(REPO, FILE, gguf_bytes)
    path = pull(REPO)
    blob = path.resolve()
    damaged = bytearray(gguf_bytes)
    damaged[-1] ^= 0xFF
    tmp = blob.with_name("x.tmp")
    tmp.write_bytes(bytes(damaged))
    os.replace(tmp, blob)
    assert "corrupt" in _one_line_error(resolve_model, REPO)
    assert not blob.exists()
    assert pull(REPO).read_bytes() == gguf_bytes
    assert hub.count("GET", "/resolve/") == 2


def test_list_models_shows_installed_state_and_rm_removes(hub, home, gguf_bytes):
    hub.add("Qwen/Qwen3-0.6B-GGUF", "Qwen3-0.6B-Q8_0.gguf", gguf_bytes)
    hub.add(REPO, FILE, gguf_bytes)
    rows = {r["name"]: r for r in list_models()}
    assert rows["qwen3-0.6b"]["installed"] is False and rows["qwen3-0.6b"]["path"] is None
    pull("qwen3-0.6b")
    pull(REPO)
    rows = {r["name"]: r for r in list_models()}
    assert rows["qwen3-0.6b"]["installed"] is True and rows["qwen3-0.6b"]["size"] == len(gguf_bytes)
    extra = rows[f"{REPO}:{FILE}"]  # a non-registry GGUF in the cache gets a row too
    assert extra["installed"] and extra["repo"] == REPO
    assert resolve_model(extra["name"])[0] == extra["path"]

    removed = rm("qwen3-0.6b")
    assert [p.name for p in removed] == ["Qwen3-0.6B-Q8_0.gguf"]
    rows = {r["name"]: r for r in list_models()}
    assert rows["qwen3-0.6b"]["installed"] is False
    assert not (home / "hf" / "hub" / "models--Qwen--Qwen3-0.6B-GGUF").exists()
    assert "not installed" in _one_line_error(rm, "qwen3-0.6b")
    rm(REPO)
    assert _blobs(home) == []


def test_rm_one_quant_keeps_the_others(hub, home, gguf_bytes):
    other = bytearray(gguf_bytes)
    other[-1] ^= 0x01  # different content, different blob
    hub.add(REPO, "Tiny-Q4_0.gguf", gguf_bytes)
    hub.add(REPO, "Tiny-Q8_0.gguf", bytes(other))
    pull(f"{REPO}:Q4_0")
    keep = pull(f"{REPO}:Q8_0")
    rm(f"{REPO}:Q4_0")
    assert keep.read_bytes() == bytes(other)
    assert len(_blobs(home)) == 1


def _run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_real_environment_variables_in_a_subprocess(fake_hub, tmp_path, gguf_bytes):
    # HF_ENDPOINT/HF_HOME/HF_HUB_OFFLINE are read by huggingface_hub at import: a fresh process.
    fake_hub.add(REPO, FILE, gguf_bytes)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "RAAS_LOCAL_"))
    }
    env.update(
        HF_ENDPOINT=fake_hub.url,
        HF_HOME=str(tmp_path / "hf"),
        RAAS_LOCAL_HOME=str(tmp_path / "raas"),
        NO_PROXY="127.0.0.1,localhost",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
    )
    pulled = _run(f"from raas_local.models import pull; print(pull({REPO!r}))", env)
    assert pulled.returncode == 0, pulled.stderr
    assert Path(pulled.stdout.strip()).read_bytes() == gguf_bytes

    env["HF_HUB_OFFLINE"] = "1"
    cli = "import sys; from raas_local.models.cli import main; sys.exit(main(sys.argv[1:]))"
    ok = subprocess.run([sys.executable, "-c", cli, "models", "pull", REPO], env=env, cwd=ROOT,
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and ok.stdout.strip() == pulled.stdout.strip()
    missing = subprocess.run([sys.executable, "-c", cli, "models", "pull", "qwen3-0.6b"], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2
    assert missing.stderr.count("\n") == 1 and "raas-local models pull qwen3-0.6b" in missing.stderr
    assert fake_hub.count("GET", "/resolve/") == 1


def test_unreachable_hub_falls_back_to_the_cache(hub, gguf_bytes, monkeypatch):
    import socket

    import huggingface_hub.constants as c

    hub.add("Qwen/Qwen3-0.6B-GGUF", "Qwen3-0.6B-Q8_0.gguf", gguf_bytes)
    hub.add(REPO, "Tiny-Q8_0.gguf", gguf_bytes)
    named, quant = pull("qwen3-0.6b"), pull(f"{REPO}:Q8_0")
    with socket.socket() as s:  # a port with nobody listening: connection refused
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setattr(c, "ENDPOINT", dead)
    monkeypatch.setattr(c, "HUGGINGFACE_CO_URL_TEMPLATE", dead + "/{repo_id}/resolve/{revision}/{filename}")
    assert pull("qwen3-0.6b") == named
    assert pull(f"{REPO}:Q8_0") == quant  # cached quant: no listing needed
