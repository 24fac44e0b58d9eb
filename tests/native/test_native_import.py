"""The import-time check that the loaded libllama is the patched one."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from raas_local.errors import NativeLibraryError


def test_patched_library_is_loaded():
    from raas_local import native

    assert native._lib.llama_raas_version() == native.API_VERSION
    native.check_library(native._lib)


def test_a_library_without_the_patch_is_refused_with_rebuild_instructions():
    from raas_local import native

    libc = ctypes.CDLL(ctypes.util.find_library("c"))  # a real library that lacks llama_raas_version
    with pytest.raises(NativeLibraryError) as e:
        native.check_library(libc)
    assert "stock llama.cpp without the raas-local patches" in str(e.value)
    assert "native/build.py --install" in str(e.value)


def test_unloadable_library_gives_one_line_error_from_the_cli(tmp_path):
    # llama-cpp-python loads libllama from LLAMA_CPP_LIB_PATH when set: point it at nothing
    env = dict(os.environ, LLAMA_CPP_LIB_PATH=str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "raas_local.cli", "run", "-p", "hi", "-n", "1"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == NativeLibraryError.exit_code
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("raas-local: error: llama-cpp-python is not installed or does not load")
    assert "make setup" in lines[-1]
    assert "Traceback" not in r.stderr


ROOT = Path(__file__).resolve().parents[2]


def copy_checkout(dest: Path, with_sources: bool = True) -> Path:
    """The package (and, for a checkout, native/ and patches/) copied to dest."""
    shutil.copytree(ROOT / "raas_local", dest / "raas_local", ignore=shutil.ignore_patterns("__pycache__"))
    if with_sources:
        shutil.copytree(ROOT / "native", dest / "native", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(ROOT / "patches", dest / "patches")
    return dest


def test_the_installed_wheel_was_built_from_this_checkout():
    import llama_cpp

    from raas_local import native

    assert native.checkout_root() == ROOT
    assert "+raas." in llama_cpp.__version__
    native.check_build_key(ROOT, llama_cpp.__version__)  # the import ran it too


@pytest.mark.parametrize("changed", ["native/raas-policy-raas.cpp", "patches/0001-raas-c-api.patch"])
def test_a_source_changed_since_the_build_is_refused_with_the_rebuild_command(tmp_path, changed):
    import llama_cpp

    from raas_local import native

    root = copy_checkout(tmp_path)
    native.check_build_key(root, llama_cpp.__version__)  # an unchanged copy gives the same key
    with open(root / changed, "a") as f:
        f.write("\n")
    with pytest.raises(NativeLibraryError) as e:
        native.check_build_key(root, llama_cpp.__version__)
    msg = str(e.value)
    assert llama_cpp.__version__ in msg and "run `make native`" in msg and str(root) in msg and "\n" not in msg


def test_from_a_stale_checkout_the_cli_gives_one_line_and_an_installed_package_runs(tmp_path):
    from cli_testutil import assert_one_line_error

    stale = copy_checkout(tmp_path / "checkout")
    with open(stale / "native" / "raas.h", "a") as f:
        f.write("// changed after the build\n")
    env = dict(os.environ, PYTHONPATH=str(stale))
    r = subprocess.run([sys.executable, "-m", "raas_local.cli", "run", "-p", "hi", "-n", "1"], cwd=stale,
                       capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
    assert_one_line_error(r, NativeLibraryError.exit_code, "make native", str(stale))

    # an installed (non-editable) package has no sources to compare with: the API check alone
    installed = copy_checkout(tmp_path / "site", with_sources=False)
    env = dict(os.environ, PYTHONPATH=str(installed))
    r = subprocess.run([sys.executable, "-c", "import raas_local.native as n; print(n.__file__, n.checkout_root())"],
                       cwd=installed, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(installed / "raas_local" / "native.py"), "None"]
