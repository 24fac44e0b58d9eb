"""native/build.py on a small fake sdist: checksum, patch failures, the wheel cache."""

from __future__ import annotations

import hashlib
import io
import re
import os
import shutil
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
    # a CUDA set-up (RAAS_CUDA=1 make test) must not turn these CPU builds into CUDA ones
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAAS_CUDA")}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


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


def test_an_edit_while_waiting_for_the_build_lock_is_not_built_under_the_old_key(setup, b):
    """The key and the tree come from the same bytes. A set-up that waited for another's build
    used to copy native/ after the wait: an edit made meanwhile was compiled into a wheel named
    after the sources it had read before (and the import check then took that wheel as current)."""
    import fcntl
    import time

    tmp, sdist, sha, patches, native = setup
    cmd = [sys.executable, str(BUILD), "--sdist", str(sdist), "--sdist-sha256", sha, "--patches", str(patches),
           "--native", str(native), "--cache-dir", str(tmp / "cache"), "--no-build-isolation", "--cpu"]
    (tmp / "cache" / "build").mkdir(parents=True)
    with open(tmp / "cache" / "build" / "cpu.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another set-up is building
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for line in proc.stderr:
            if "waiting for it" in line:
                break
        (native / "raas-x.cpp").write_text("int raas_x() { return 2; }\n")  # edited during the wait
        fcntl.flock(lock, fcntl.LOCK_UN)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    wheel = Path(out.strip().splitlines()[-1])
    vendor = tmp / "cache" / "build" / "cpu" / "llama_cpp_python-0.3.36" / "vendor" / "llama.cpp"
    built = (vendor / "src" / "raas" / "raas-x.cpp").read_text()
    keyed = b.installed_source_key(wheel.name.split("-")[1])
    edited = b.source_key(sha, sorted(patches.glob("*.patch")), sorted(native.glob("*.cpp")))[:8]
    # the wheel holds what its key names: the sources as read before the edit
    assert built == "int raas_x() { return 1; }\n" and keyed != edited, (built, keyed, edited)


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


# -- CUDA: the flags, the cuBLAS package, the backend choice --------------------


@pytest.fixture
def b(monkeypatch):
    """native/build.py as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("raas_native_build", BUILD)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mod)  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_cuda_without_a_gpu_or_arch_is_one_line(setup, tmp_path):
    tmp, sdist, sha, patches, native = setup
    nvcc = shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
    if not Path(nvcc).exists():
        pytest.skip("no nvcc here")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAAS_CUDA")}
    env["PATH"] = f"{Path(nvcc).parent}:/usr/bin:/bin"  # no nvidia-smi
    if shutil.which("nvidia-smi", path=env["PATH"]):
        pytest.skip("nvidia-smi is here")
    cmd = [sys.executable, str(BUILD), "--cuda", "--sdist", str(sdist), "--sdist-sha256", sha, "--patches", str(patches),
           "--native", str(native), "--cache-dir", str(tmp / "cache"), "--no-build-isolation"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        "native/build: error: no GPU found by nvidia-smi to build for: set RAAS_CUDA_ARCH to its compute capability "
        "(e.g. RAAS_CUDA_ARCH=90 for an H100, 86 for an RTX 3090)")
    bad = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(env, RAAS_CUDA_ARCH="sm_90"))
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines()[-1] == (
        "native/build: error: RAAS_CUDA_ARCH='sm_90' is not a list of compute capabilities such as 90 or 86;90")


def test_cuda_arch_is_taken_as_asked(b):
    assert b.cuda_arch("90") == "90"
    assert b.cuda_arch("86, 90") == "86;90"
    assert b.cuda_arch("90-real;120a") == "90-real;120a"


def test_cublas_package_matches_the_toolkit_major_minor(b):
    assert b.cublas_package("13.0") == ("nvidia-cublas", "nvidia-cublas==13.0.*")
    assert b.cublas_package("12.4") == ("nvidia-cublas-cu12", "nvidia-cublas-cu12==12.4.*")


def _cuda(b, tmp_path, driver: bool, package: str | None):
    lib = tmp_path / "site-packages" / "nvidia" / "cu13" / "lib"
    lib.mkdir(parents=True)
    for name in ("libcublas.so.13", "libcublasLt.so.13"):
        (lib / name).touch()
    tk = b.CudaToolkit(Path("/opt/cuda/bin/nvcc"), "13.0", Path("/opt/cuda/include"), (Path("/opt/cuda/lib64"),))
    return b.CudaBuild(tk, "90", driver, b.Cublas(lib.parent / "include", lib, package))


def test_cuda_flags_without_driver_and_with_cublas_from_pypi(b, tmp_path, monkeypatch):
    monkeypatch.setattr(b.sysconfig, "get_paths", lambda: {"platlib": str(tmp_path / "site-packages")})
    cuda = _cuda(b, tmp_path, driver=False, package="nvidia-cublas==13.0.2.14")
    args = cuda.key_args()
    assert "-DCMAKE_CUDA_ARCHITECTURES=90" in args and "-DGGML_CUDA_NO_VMM=ON" in args
    assert "-DGGML_CUDA_FA_ALL_QUANTS=OFF" in args
    # llama_cpp/lib/ -> nvidia/cu13/lib/ in the same site-packages; \$ survives the generator's shell
    assert "-DCMAKE_SHARED_LINKER_FLAGS=-Wl,-rpath,\\$ORIGIN/../../nvidia/cu13/lib" in args
    lib = tmp_path / "site-packages" / "nvidia" / "cu13" / "lib"
    assert cuda.path_args() == [
        "-DCMAKE_CUDA_COMPILER=/opt/cuda/bin/nvcc",
        f"-DCUDA_cublas_LIBRARY={lib}/libcublas.so.13", f"-DCUDA_cublasLt_LIBRARY={lib}/libcublasLt.so.13",
        f"-DCMAKE_CUDA_FLAGS=-I{lib.parent}/include", f"-DCMAKE_CXX_FLAGS=-I{lib.parent}/include"]
    # paths of this machine stay out of the key: only the package's version goes in
    assert not any(str(tmp_path) in a for a in args)
    assert cuda.key_extra() == ["cuda 13.0", "cublas nvidia-cublas==13.0.2.14"]


def test_cuda_flags_with_driver_and_the_toolkits_cublas(b, tmp_path):
    cuda = _cuda(b, tmp_path, driver=True, package=None)
    assert "-DGGML_CUDA_NO_VMM=ON" not in cuda.key_args()
    assert not any("rpath" in a for a in cuda.key_args())
    assert cuda.path_args() == ["-DCMAKE_CUDA_COMPILER=/opt/cuda/bin/nvcc"]


def test_cuda_and_cpu_wheels_have_different_keys(b, tmp_path):
    cuda = _cuda(b, tmp_path, driver=False, package="nvidia-cublas==13.0.2.14")
    cpu_key = b.cache_key("0" * 64, b.cmake_args_for(None))
    cuda_key = b.cache_key("0" * 64, b.cmake_args_for(cuda), cuda.key_extra())
    newer = b.cache_key("0" * 64, b.cmake_args_for(cuda), ["cuda 13.0", "cublas nvidia-cublas==13.0.3.1"])
    assert len({cpu_key, cuda_key, newer}) == 3


def test_the_toolkit_is_read_from_nvcc(b):
    try:
        nvcc = b.find_nvcc()
    except b.BuildError:
        pytest.skip("no nvcc here")
    tk = b.cuda_toolkit(nvcc)
    assert re.fullmatch(r"\d+\.\d+", tk.version)
    assert (tk.include / "cuda_runtime.h").is_file()
    assert any(any(d.glob("libcudart.so*")) for d in tk.libs)


def test_backend_choice_is_kept_by_later_installs(b, tmp_path, monkeypatch):
    monkeypatch.setattr(b, "BACKEND_FILE", tmp_path / "raas-local-backend.json")
    monkeypatch.delenv("RAAS_CUDA", raising=False)
    monkeypatch.delenv("RAAS_CUDA_ARCH", raising=False)
    assert b.chosen_backend(b.parse_args(["--install"])) == (False, None)
    b.BACKEND_FILE.write_text('{"cuda": true, "arch": "90"}\n')
    assert b.chosen_backend(b.parse_args(["--install"])) == (True, "90")  # make test after make setup RAAS_CUDA=1
    assert b.chosen_backend(b.parse_args([])) == (False, None)  # a plain build is not an install
    assert b.chosen_backend(b.parse_args(["--install", "--cpu"])) == (False, "90")
    monkeypatch.setenv("RAAS_CUDA", "0")
    assert b.chosen_backend(b.parse_args(["--install"]))[0] is False
    monkeypatch.setenv("RAAS_CUDA", "yes")
    with pytest.raises(b.BuildError, match="use RAAS_CUDA=1 \\(CUDA\\) or RAAS_CUDA=0 \\(CPU\\)"):
        b.chosen_backend(b.parse_args(["--install"]))


def test_an_installed_cuda_wheel_finds_cublas_without_ld_library_path():
    import llama_cpp

    lib = Path(llama_cpp.__file__).parent / "lib" / "libggml-cuda.so"
    if not lib.exists():
        pytest.skip("the CPU wheel is installed (make setup RAAS_CUDA=1 installs the CUDA one)")
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    out = subprocess.run(["ldd", str(lib)], capture_output=True, text=True, env=env, timeout=60).stdout
    assert "not found" not in out, out
    cublas = next(ln for ln in out.splitlines() if "libcublas.so" in ln)
    assert "=> /" in cublas, cublas


def test_the_wheel_version_names_its_sources_whatever_the_backend(b):
    """The import check compares sources only: a CUDA wheel of this checkout passes it like a CPU one."""
    src = b.source_key("0" * 64, [], [])
    v_cpu = b.wheel_version(src, b.cache_key(src, b.cmake_args_for(None)))
    v_cuda = b.wheel_version(src, b.cache_key(src, b.cmake_args_for(None) + ["-DGGML_CUDA=on"]))
    assert v_cpu != v_cuda
    assert b.installed_source_key(v_cpu) == b.installed_source_key(v_cuda) == src[:8]
    assert b.installed_source_key("0.3.36+raas.c96ebd98") is None  # a wheel from before: rebuild
