"""The import-time check that the loaded libllama is the patched one."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import subprocess
import sys

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
