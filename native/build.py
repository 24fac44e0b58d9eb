#!/usr/bin/env python3
"""Build the patched llama-cpp-python wheel that raas-local runs on.

Steps, each failing with one clear line:
  1. fetch the pinned sdist (llama-cpp-python==0.3.36) with pip, unless cached;
  2. check its sha256 against native/sdist.sha256;
  3. extract it, copy native/*.cpp|*.h into vendor/llama.cpp/src/raas/;
  4. apply patches/*.patch in order (the error names the patch, file and hunk);
  5. build the wheel (CPU, or CUDA with --cuda / RAAS_CUDA=1) with pip;
  6. cache it under <cache>/wheels/<key>/, key = sha256 of every input:
     sdist, patches, native sources, CMake flags, Python tag, CPU;
  7. with --install, pip-install it (--no-deps, so nothing can pull the stock
     llama-cpp-python); a repeat with nothing changed takes seconds.

The wheel's version is 0.3.36+raas.<key8>, so `pip list` shows which build is
installed and an installed build that matches the key is left alone.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PACKAGE = "llama-cpp-python"
VERSION = "0.3.36"
VENDOR = Path("vendor/llama.cpp")
# Flags for every build: only libllama/ggml, no tools or multimodal library.
BASE_CMAKE_ARGS = [
    "-DLLAVA_BUILD=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_TOOLS=OFF",
    "-DLLAMA_BUILD_SERVER=OFF",
]


class BuildError(Exception):
    """A step failed; the message is one line for the user."""


def log(msg: str) -> None:
    print(f"[native/build] {msg}", file=sys.stderr, flush=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def default_cache_dir() -> Path:
    sys.path.insert(0, str(ROOT))
    from raas_local.paths import cache_home  # no dependencies: safe before set-up

    return cache_home()


# -- 1, 2: the sdist ---------------------------------------------------------


def fetch_sdist(cache: Path) -> Path:
    dest = cache / "sdist"
    found = sorted(dest.glob(f"llama_cpp_python-{VERSION}.tar.gz"))
    if found:
        return found[0]
    dest.mkdir(parents=True, exist_ok=True)
    log(f"downloading {PACKAGE}=={VERSION} sdist from PyPI")
    # pip prepares an sdist's metadata after downloading it, with the sdist's
    # build backend in an isolated environment: --no-build-isolation would need
    # that backend in this venv, and --no-binary :all: would make pip build the
    # backend and its own build tools from source too. So: sdist for this package only.
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", PACKAGE,
           f"{PACKAGE}=={VERSION}", "-d", str(dest)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(dest.glob(f"llama_cpp_python-{VERSION}.tar.gz"))
    if r.returncode != 0 or not found:
        logfile = dest / "pip-download.log"
        logfile.write_text(f"$ {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
        raise BuildError(f"could not download the {PACKAGE}=={VERSION} sdist: "
                         f"{pip_failure_reason(r.stdout + r.stderr)} (pip's output: {logfile})")
    return found[0]


def pip_failure_reason(output: str) -> str:
    """The last lines of pip's output that say something, joined into one line.

    pip ends many failures with 'hint: See above for details.' or a bare
    'note:' line; those are skipped so the user sees the cause itself.
    """
    noise = ("hint:", "note:", "╰─>", "[end of output]", "See above", "This error originates")
    lines = [ln.strip(" │╰─>") .strip() for ln in output.splitlines()]
    lines = [ln for ln in lines if ln and not any(ln.startswith(n) or n in ln for n in noise)]
    errors = [ln for ln in lines if ln.lower().startswith("error")]
    picked = errors[-2:] if errors else lines[-2:]
    return " / ".join(picked) if picked else "pip printed nothing"


def verify_sdist(path: Path, expected: str) -> str:
    got = sha256_file(path)
    if got != expected:
        raise BuildError(f"sdist {path.name} has sha256 {got}, expected {expected}: refusing to build it")
    return got


# -- 6: the cache key --------------------------------------------------------


def native_sources(native_dir: Path) -> list[Path]:
    return sorted(p for p in native_dir.iterdir() if p.suffix in (".cpp", ".h"))


def patch_files(patches_dir: Path) -> list[Path]:
    return sorted(patches_dir.glob("*.patch"))


def cpu_signature() -> str:
    # GGML_NATIVE builds for this CPU: a wheel must not be reused on another.
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return hashlib.sha256(line.encode()).hexdigest()[:16]
    except OSError:
        pass
    return platform.processor() or "unknown"


def cache_key(sdist_sha: str, patches: list[Path], sources: list[Path], cmake_args: list[str]) -> str:
    h = hashlib.sha256()
    h.update(f"sdist {sdist_sha}\n".encode())
    for kind, files in (("patch", patches), ("native", sources)):
        for p in files:
            h.update(f"{kind} {p.name} {sha256_file(p)}\n".encode())
    h.update(("cmake " + " ".join(cmake_args) + "\n").encode())
    h.update(f"py {sys.implementation.cache_tag} {platform.machine()} {cpu_signature()}\n".encode())
    return h.hexdigest()


# -- 3, 4: source tree -------------------------------------------------------


def _failed_hunk(patch: Path, file: str, line: int) -> str:
    """Which hunk of `file` in `patch` starts at old line `line` (1-based count)."""
    current, n = None, 0
    for text in patch.read_text(errors="replace").splitlines():
        if text.startswith("--- "):
            current, n = None, 0
        elif text.startswith("+++ "):
            current = text[4:].split("\t")[0]
            current = current[2:] if current.startswith("b/") else current
        elif text.startswith("@@") and current == file:
            n += 1
            m = re.match(r"@@ -(\d+)", text)
            if m and int(m.group(1)) == line:
                return f"hunk #{n}"
    return "a hunk"


def apply_patches(tree: Path, patches: list[Path]) -> None:
    env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(tree.parent))
    for p in patches:
        r = subprocess.run(["git", "apply", "--whitespace=nowarn", str(p)], cwd=tree,
                           capture_output=True, text=True, env=env)
        if r.returncode != 0:
            m = re.search(r"patch failed: (.+):(\d+)", r.stderr)
            if m:
                where = f"{m.group(1)}, {_failed_hunk(p, m.group(1), int(m.group(2)))} (line {m.group(2)})"
            else:
                where = (r.stderr.strip().splitlines() or ["unknown error"])[-1].removeprefix("error: ")
            raise BuildError(f"patch {p.name} does not apply: {where}")
        log(f"applied {p.name}")


def prepare_tree(sdist: Path, work: Path, patches: list[Path], sources: list[Path], version: str) -> Path:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    with tarfile.open(sdist) as tar:
        tar.extractall(work, filter="data")
    roots = [p for p in work.iterdir() if p.is_dir()]
    if len(roots) != 1:
        raise BuildError(f"sdist {sdist.name} does not hold one top-level folder")
    src = roots[0]
    vendor = src / VENDOR
    if not vendor.is_dir():
        raise BuildError(f"sdist {sdist.name} has no {VENDOR}")
    # the sdist keeps a submodule's .git file that points nowhere; git apply must not see it
    gitfile = vendor / ".git"
    if gitfile.is_file():
        gitfile.unlink()
    raas_dir = vendor / "src" / "raas"
    raas_dir.mkdir(exist_ok=True)
    for s in sources:
        shutil.copy2(s, raas_dir / s.name)
    apply_patches(vendor, patches)
    init = src / "llama_cpp" / "__init__.py"
    if init.exists():
        text = init.read_text()
        init.write_text(re.sub(r'__version__ = "[^"]+"', f'__version__ = "{version}"', text))
    return src


# -- 5: the wheel ------------------------------------------------------------


def cuda_arch() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30).stdout.split()
        if out:
            return out[0].replace(".", "")
    except (OSError, subprocess.TimeoutExpired):
        pass
    return "native"


# /proc/cpuinfo flag -> ggml option, for x86 builds without -march=native
X86_FEATURES = {
    "sse4_2": "GGML_SSE42", "avx": "GGML_AVX", "avx2": "GGML_AVX2", "bmi2": "GGML_BMI2",
    "fma": "GGML_FMA", "f16c": "GGML_F16C", "avx_vnni": "GGML_AVX_VNNI", "avx512f": "GGML_AVX512",
    "avx512vbmi": "GGML_AVX512_VBMI", "avx512_vnni": "GGML_AVX512_VNNI", "avx512_bf16": "GGML_AVX512_BF16",
}


def cpu_cmake_args() -> list[str]:
    """Build for this CPU's vector extensions, but never AMX.

    -march=native turns on ggml's AMX kernels on CPUs that have AMX, and those
    crashed here (SIGSEGV in ggml_backend_amx_mul_mat on the Q4_1 default model).
    So on x86 the extensions are named one by one, AMX left off.
    """
    if platform.machine() not in ("x86_64", "AMD64"):
        return []
    try:
        flags = set(next(ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")).split())
    except (OSError, StopIteration):
        return []
    args = ["-DGGML_NATIVE=OFF", "-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF"]
    args += [f"-D{opt}={'ON' if flag in flags else 'OFF'}" for flag, opt in X86_FEATURES.items()]
    return args


def cmake_args_for(cuda: bool, arch: str | None) -> list[str]:
    args = list(BASE_CMAKE_ARGS) + cpu_cmake_args()
    if cuda:
        args += ["-DGGML_CUDA=on", f"-DCMAKE_CUDA_ARCHITECTURES={arch or cuda_arch()}"]
    return args


def build_wheel(src: Path, out: Path, cmake_args: list[str], jobs: int, isolation: bool) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["CMAKE_ARGS"] = " ".join(cmake_args)
    env["CMAKE_BUILD_PARALLEL_LEVEL"] = str(jobs)
    if shutil.which("ccache"):
        # stable paths under the cache make repeat builds after a patch change mostly cache hits
        env["CMAKE_ARGS"] += " -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache"
        env.setdefault("CCACHE_BASEDIR", str(src))
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), str(src)]
    if not isolation:
        cmd.insert(5, "--no-build-isolation")
    log(f"building wheel: CMAKE_ARGS={env['CMAKE_ARGS']}")
    logfile = out / "build.log"
    with open(logfile, "w") as f:
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    wheels = sorted(out.glob("*.whl"))
    if r.returncode != 0 or not wheels:
        tail = [ln for ln in logfile.read_text(errors="replace").splitlines() if "error" in ln.lower()][-1:]
        raise BuildError(f"wheel build failed ({tail[0].strip() if tail else 'see log'}); full log: {logfile}")
    return wheels[0]


# -- 7: install --------------------------------------------------------------


def installed_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("llama_cpp_python")
    except metadata.PackageNotFoundError:
        return None


def install(wheel: Path, version: str) -> None:
    if installed_version() == version:
        log(f"llama-cpp-python {version} already installed")
        return
    log(f"installing {wheel.name}")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                        "--force-reinstall", str(wheel)], capture_output=True, text=True)
    if r.returncode != 0:
        raise BuildError(f"pip could not install {wheel.name}: {(r.stderr.strip().splitlines() or ['?'])[-1]}")


# -- driver ------------------------------------------------------------------


def build_lock(cache: Path, backend: str):
    """An exclusive lock per backend while a wheel is built: two set-ups at once
    (two checkouts, CI beside a session) share one build folder and 2 cores."""
    import contextlib
    import fcntl

    @contextlib.contextmanager
    def held():
        (cache / "build").mkdir(parents=True, exist_ok=True)
        with open(cache / "build" / f"{backend}.lock", "w") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log(f"another set-up is building a {backend} wheel; waiting for it")
                fcntl.flock(f, fcntl.LOCK_EX)
            yield

    return held()


def build_into_slot(sdist: Path, cache: Path, slot: Path, version: str, patches: list[Path],
                    sources: list[Path], cmake_args: list[str], args: argparse.Namespace) -> Path:
    """Build in cache/build/<backend>/ and move the wheel into its slot.

    The patched tree and build.log stay there (replaced by the next build), so
    the log that a failure names can still be read.
    """
    log(f"cache miss: building {version} ({len(patches)} patches, {len(sources)} native files)")
    work = cache / "build" / backend_name(args)
    src = prepare_tree(sdist, work, patches, sources, version)
    built = build_wheel(src, work / "wheel", cmake_args, args.jobs, not args.no_build_isolation)
    slot.mkdir(parents=True, exist_ok=True)
    wheel = slot / built.name
    os.replace(built, wheel)  # the slot holds a wheel only once it is complete
    log(f"built and cached: {wheel}")
    return wheel


def backend_name(args: argparse.Namespace) -> str:
    return "cuda" if args.cuda else "cpu"


def build(args: argparse.Namespace) -> Path:
    cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    sdist = Path(args.sdist) if args.sdist else fetch_sdist(cache)
    expected = args.sdist_sha256 or (HERE / "sdist.sha256").read_text().split()[0]
    sdist_sha = verify_sdist(sdist, expected)
    if args.fetch_only:
        print(sdist)
        return sdist

    patches = patch_files(Path(args.patches))
    sources = native_sources(Path(args.native))
    cmake_args = cmake_args_for(args.cuda, args.cuda_arch)
    key = cache_key(sdist_sha, patches, sources, cmake_args)
    version = f"{VERSION}+raas.{key[:8]}"
    slot = cache / "wheels" / key
    hit = sorted(slot.glob("*.whl")) if not args.force else []
    if not hit:
        with build_lock(cache, backend_name(args)):
            hit = sorted(slot.glob("*.whl")) if not args.force else []  # built while we waited?
            if not hit:
                wheel = build_into_slot(sdist, cache, slot, version, patches, sources, cmake_args, args)
    if hit:
        log(f"cache hit: {hit[0]}")
        wheel = hit[0]
    if args.install:
        install(wheel, version)
    print(wheel)
    return wheel


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--install", action="store_true", help="pip-install the wheel into this Python")
    ap.add_argument("--cuda", action="store_true", default=os.environ.get("RAAS_CUDA") == "1",
                    help="build the CUDA backend (also RAAS_CUDA=1)")
    ap.add_argument("--cuda-arch", default=os.environ.get("RAAS_CUDA_ARCH"),
                    help="CMAKE_CUDA_ARCHITECTURES (default: the GPU's, from nvidia-smi)")
    ap.add_argument("--cache-dir", help="cache root (default: raas_local.paths.cache_home())")
    ap.add_argument("--sdist", help="use this sdist file instead of downloading it")
    ap.add_argument("--sdist-sha256", help="expected sha256 (default: native/sdist.sha256)")
    ap.add_argument("--patches", default=str(ROOT / "patches"))
    ap.add_argument("--native", default=str(HERE))
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--force", action="store_true", help="rebuild even on a cache hit")
    ap.add_argument("--fetch-only", action="store_true", help="download (unless cached) and verify the sdist, then stop")
    ap.add_argument("--no-build-isolation", action="store_true",
                    help="build with this environment's build backend (tests use it offline)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    try:
        build(parse_args(argv))
    except BuildError as e:
        print(f"native/build: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
