"""ctypes bindings of the raas-local C API (llama_raas_* in the patched llama.h).

Importing this module checks that the libllama that llama-cpp-python loaded is
the patched one (it exports ``llama_raas_version`` with the version below) and,
when raas_local runs from a checkout, that it was built from that checkout's
native/ and patches/; otherwise it raises NativeLibraryError saying how to
rebuild.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from raas_local.errors import NativeLibraryError, PolicyError

# must match LLAMA_RAAS_VERSION in native/raas-api.cpp
API_VERSION = 5
REBUILD = "run `make setup` (or `python native/build.py --install`) in the raas-local checkout"

try:
    import llama_cpp
    import llama_cpp.llama_cpp as _ll
except Exception as e:  # ImportError, or OSError from a library that fails to load
    raise NativeLibraryError(f"llama-cpp-python is not installed or does not load ({e}); {REBUILD}") from None



def check_library(lib) -> None:
    """Refuse a libllama without the raas-local patches, or with another API version."""
    if not hasattr(lib, "llama_raas_version"):
        raise NativeLibraryError(
            f"the loaded libllama ({getattr(lib, '_name', '?')}) is stock llama.cpp without the raas-local patches; {REBUILD}"
        )
    fn = lib.llama_raas_version
    fn.argtypes, fn.restype = [], ctypes.c_int32
    if fn() != API_VERSION:
        raise NativeLibraryError(
            f"the loaded libllama has raas-local C API version {fn()}, this package needs {API_VERSION}; {REBUILD}"
        )


def checkout_root() -> Path | None:
    """The source checkout raas_local is imported from (an editable install), or None for an installed package."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "native" / "build.py").is_file() and (root / "patches").is_dir() else None


def _build_module(root: Path):
    import sys

    spec = importlib.util.spec_from_file_location("_raas_native_build", root / "native" / "build.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up while it loads
    spec.loader.exec_module(mod)
    return mod


def expected_source_key(root: Path, build) -> str:
    """The source key8 native/build.py (``build``) gives the checkout's sdist pin, patches/ and native/."""
    sdist_sha = (root / "native" / "sdist.sha256").read_text().split()[0]
    return build.source_key(sdist_sha, build.patch_files(root / "patches"), build.native_sources(root / "native"))[:8]


def check_build_key(root: Path | None, installed: str) -> None:
    """Refuse a wheel built from other native/ or patches/ than the checkout's: its tests would test the old code.

    The wheel's version carries the key of its sources (native/build.py's wheel_version), whatever
    the backend and flags. An installed (non-editable) raas_local has no sources to compare with;
    the API version check stands alone."""
    if root is None:
        return
    try:
        build = _build_module(root)
        want, got = expected_source_key(root, build), build.installed_source_key(installed)
    except Exception as e:  # a checkout missing a file, or a build.py that no longer loads
        raise NativeLibraryError(f"cannot compute the native build key of {root} ({type(e).__name__}: {e}); "
                                 "run `make native` there") from None
    if got != want:
        raise NativeLibraryError(
            f"the installed llama-cpp-python {installed} was not built from this checkout's native/ and patches/ "
            f"(they give sources src{want}); run `make native` in {root} to rebuild it"
        )


_lib = _ll._lib
check_library(_lib)
check_build_key(checkout_root(), getattr(llama_cpp, "__version__", "?"))

KIND_DENSE, KIND_RAAS, KIND_STREAMING, KIND_H2O, KIND_QUEST = range(5)

llama_pos = ctypes.c_int32


class llama_raas_params(ctypes.Structure):
    _fields_ = [
        ("kind", ctypes.c_int32),
        ("budget", ctypes.c_int32),
        ("page_size", ctypes.c_int32),
        ("refresh_ratio", ctypes.c_float),
        ("n_sink", ctypes.c_int32),
        ("heavy_ratio", ctypes.c_float),
        ("head_agg", ctypes.c_int32),
        ("skip_layers", ctypes.c_int32),
        ("page_score", ctypes.c_int32),
        ("protect_pages", ctypes.c_int32),
        ("reserved", ctypes.c_int32 * 2),
    ]


class llama_raas_stats(ctypes.Structure):
    _fields_ = [
        ("budget", ctypes.c_int32),
        ("n_cells", ctypes.c_int32),
        ("used", ctypes.c_int32),
        ("pinned", ctypes.c_int32),
        ("decode_cells", ctypes.c_int32),
        ("pages", ctypes.c_int32),
        ("step", ctypes.c_int32),
        ("visited", ctypes.c_int32),  # cells and pages the host visited in the last decode
        ("evictions", ctypes.c_int64),
        ("evicted_cells", ctypes.c_int64),
        ("newest_pos", llama_pos),
        ("last_evictions", ctypes.c_int32),
    ]


class llama_raas_page_info(ctypes.Structure):
    _fields_ = [
        ("first_pos", llama_pos),
        ("last_pos", llama_pos),
        ("n_cells", ctypes.c_int32),
        ("ts", ctypes.c_int32),
        ("score", ctypes.c_float),
        ("closed", ctypes.c_int32),
        ("acc", ctypes.c_float),
    ]


def _bind(name, argtypes, restype):
    fn = getattr(_lib, name)
    fn.argtypes = argtypes
    fn.restype = restype
    return fn


_ctx = ctypes.c_void_p
_version = _bind("llama_raas_version", [], ctypes.c_int32)
_default_params = _bind("llama_raas_default_params", [], llama_raas_params)
_set_policy = _bind("llama_raas_set_policy", [_ctx, ctypes.POINTER(llama_raas_params)], ctypes.c_int32)
_last_error = _bind("llama_raas_last_error", [], ctypes.c_char_p)
_seq = ctypes.c_int32  # llama_seq_id
_pin = _bind("llama_raas_pin", [_ctx, _seq, llama_pos, llama_pos], ctypes.c_int32)
_reset = _bind("llama_raas_reset", [_ctx], None)
_clear_seq = _bind("llama_raas_clear_seq", [_ctx, _seq], ctypes.c_int32)
_move_seq = _bind("llama_raas_move_seq", [_ctx, _seq, _seq], ctypes.c_int32)
_get_stats = _bind("llama_raas_get_stats", [_ctx, _seq, ctypes.POINTER(llama_raas_stats)], ctypes.c_int32)
_get_pages = _bind("llama_raas_get_pages", [_ctx, _seq, ctypes.POINTER(llama_raas_page_info), ctypes.c_int32], ctypes.c_int32)
_get_scores = _bind(
    "llama_raas_get_scores",
    [_ctx, _seq, ctypes.POINTER(llama_pos), ctypes.POINTER(ctypes.c_float), ctypes.c_int32],
    ctypes.c_int32,
)
_get_evicted = _bind("llama_raas_get_evicted", [_ctx, _seq, ctypes.POINTER(llama_pos), ctypes.c_int32], ctypes.c_int32)
_override_scores = _bind(
    "llama_raas_override_scores",
    [_ctx, _seq, ctypes.POINTER(llama_pos), ctypes.POINTER(ctypes.c_float), ctypes.c_int32],
    ctypes.c_int32,
)
_compute_buffer_size = _bind("llama_raas_compute_buffer_size", [_ctx], ctypes.c_size_t)


def last_error() -> str:
    return (_last_error() or b"").decode("utf-8", "replace")


@dataclass(frozen=True)
class PageInfo:
    first_pos: int
    last_pos: int
    n_cells: int
    ts: int
    score: float
    closed: bool
    acc: float = 0.0  # h2o: accumulated score


# enum llama_raas_head_agg and enum llama_raas_page_score, by the names the CLI uses
HEAD_AGG = {"sum": 0, "max": 1}
PAGE_SCORE = {"max": 0, "mean": 1, "sum": 2}


def set_policy(ctx, kind: int, budget: int, page_size: int, refresh_ratio: float, n_sink: int = 4, heavy_ratio: float = 0.5,
               head_agg: str = "sum", skip_layers: int = 0, page_score: str = "max", protect_pages: int = 0) -> None:
    p = _default_params()
    p.kind, p.budget, p.page_size = kind, budget, page_size
    p.refresh_ratio, p.n_sink, p.heavy_ratio = refresh_ratio, n_sink, heavy_ratio
    p.head_agg, p.skip_layers = HEAD_AGG[head_agg], skip_layers
    p.page_score, p.protect_pages = PAGE_SCORE[page_score], protect_pages
    if _set_policy(ctx, ctypes.byref(p)) != 0:
        raise PolicyError(last_error())


# Every call below takes the sequence (0 .. n_seq_max - 1); seq 0 is the single-sequence engine's.

def pin(ctx, p0: int, p1: int, seq: int = 0) -> None:
    if _pin(ctx, seq, p0, p1) != 0:
        raise PolicyError(last_error())


def reset(ctx) -> None:
    """Forget every sequence's pins, pages and counters (after clearing the memory)."""
    _reset(ctx)


def clear_seq(ctx, seq: int) -> None:
    """Free the cells of one sequence and forget its policy state: its slot is ready for a new prompt."""
    if _clear_seq(ctx, seq) != 0:
        raise PolicyError(last_error())


def move_seq(ctx, src: int, dst: int) -> None:
    """Move sequence ``src`` (cells and policy state) into the empty sequence ``dst``."""
    if _move_seq(ctx, src, dst) != 0:
        raise PolicyError(last_error())


def get_stats(ctx, seq: int = 0) -> llama_raas_stats | None:
    """None when no policy object is attached (dense on a non-KV-cache model)."""
    s = llama_raas_stats()
    if _get_stats(ctx, seq, ctypes.byref(s)) != 0:
        return None
    return s


def get_pages(ctx, seq: int = 0) -> list[PageInfo]:
    n = _get_pages(ctx, seq, None, 0)
    if n <= 0:
        return []
    buf = (llama_raas_page_info * n)()
    n = min(n, _get_pages(ctx, seq, buf, n))
    return [PageInfo(b.first_pos, b.last_pos, b.n_cells, b.ts, b.score, bool(b.closed), b.acc) for b in buf[:n]]


def get_scores(ctx, seq: int = 0) -> dict[int, float]:
    n = _get_scores(ctx, seq, None, None, 0)
    if n <= 0:
        return {}
    pos = (llama_pos * n)()
    sc = (ctypes.c_float * n)()
    n = min(n, _get_scores(ctx, seq, pos, sc, n))
    return {pos[i]: sc[i] for i in range(n)}


def get_evicted(ctx, seq: int = 0) -> list[int]:
    n = _get_evicted(ctx, seq, None, 0)
    if n <= 0:
        return []
    buf = (llama_pos * n)()
    n = min(n, _get_evicted(ctx, seq, buf, n))
    return list(buf[:n])


def override_scores(ctx, scores: dict[int, float], seq: int = 0) -> None:
    """Score the sequence's next decode step with these instead of the graph's attention (tests, external scorers)."""
    n = len(scores)
    pos = (llama_pos * max(n, 1))(*scores.keys())
    sc = (ctypes.c_float * max(n, 1))(*scores.values())
    if _override_scores(ctx, seq, pos, sc, n) != 0:
        raise PolicyError(last_error())


def compute_buffer_size(ctx) -> int:
    """Bytes of the scheduler's compute buffers: the graph's working memory (prefill's is the largest)."""
    return int(_compute_buffer_size(ctx))
