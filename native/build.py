#!/usr/bin/env python3
"""Build the patched llama-cpp-python wheel that raas-local runs on.

Steps, each failing with one clear line:
  1. fetch the pinned sdist (llama-cpp-python==0.3.36) with pip, unless cached;
  2. check its sha256 against native/sdist.sha256;
  3. extract it, copy native/*.cpp|*.h into vendor/llama.cpp/src/raas/;
  4. apply patches/*.patch in order (the error names the patch, file and hunk);
  5. build the wheel (CPU, or CUDA with --cuda / RAAS_CUDA=1: see "CUDA"
     below for the architecture, cuBLAS and libcuda) with pip;
  6. cache it under <cache>/wheels/<key>/, key = sha256 of every input:
     sdist, patches, native sources, CMake flags, Python tag, CPU (and for
     CUDA the toolkit's and cuBLAS's versions);
  7. with --install, pip-install it (--no-deps, so nothing can pull the stock
     llama-cpp-python); a repeat with nothing changed takes seconds.

The wheel's version is 0.3.36+raas.<key8>.src<sources8>, so `pip list` shows
which build is installed (and raas_local's import check which sources it came
from); an installed build that matches the key is left alone. An
--install records the backend in the venv, and a later --install without
--cuda/--cpu or RAAS_CUDA keeps it.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from dataclasses import dataclass
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


def snapshot(files: list[Path], dest: Path) -> list[Path]:
    """Copies of ``files`` in ``dest``: the key is computed from them and the tree is built from
    them, so an edit made while this set-up waits for another's build never reaches a wheel
    named after the sources read before it."""
    dest.mkdir(parents=True, exist_ok=True)
    copies = []
    for f in files:
        shutil.copy2(f, dest / f.name)
        copies.append(dest / f.name)
    return copies


def source_key(sdist_sha: str, patches: list[Path], sources: list[Path]) -> str:
    """What the wheel is built from (not how): raas_local's import check compares it with the checkout."""
    h = hashlib.sha256()
    h.update(f"sdist {sdist_sha}\n".encode())
    for kind, files in (("patch", patches), ("native", sources)):
        for p in files:
            h.update(f"{kind} {p.name} {sha256_file(p)}\n".encode())
    return h.hexdigest()


def cache_key(src_key: str, cmake_args: list[str], extra: list[str] = ()) -> str:
    """The sources, and how they are built for this machine: one wheel per key."""
    h = hashlib.sha256()
    h.update(f"sources {src_key}\n".encode())
    h.update(("cmake " + " ".join(cmake_args) + "\n").encode())
    for line in extra:
        h.update(f"{line}\n".encode())
    h.update(f"py {sys.implementation.cache_tag} {platform.machine()} {cpu_signature()}\n".encode())
    return h.hexdigest()


def wheel_version(src_key: str, key: str) -> str:
    """0.3.36+raas.<key8>.src<source key8>: pip shows which build is installed and from which sources."""
    return f"{VERSION}+raas.{key[:8]}.src{src_key[:8]}"


def installed_source_key(version: str) -> str | None:
    """The source key8 in an installed wheel's version, or None for a wheel of another form."""
    m = re.search(r"\+raas\.[0-9a-f]{8}\.src([0-9a-f]{8})$", version)
    return m.group(1) if m else None


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


# -- 5: CUDA ------------------------------------------------------------------
#
# A CUDA build needs nvcc, the GPU's architecture and cuBLAS. Many machines
# have a partial toolkit (nvcc and the runtime, no cuBLAS) and no GPU driver
# (a build box, CI): cuBLAS then comes from NVIDIA's PyPI package for the
# toolkit's major.minor, installed into this venv, and the built library finds
# it at run time through a relative RUNPATH; without a driver there is no
# libcuda to link, so ggml's VMM pool (the one user of libcuda) is left out.

CUDA_ARCH_RE = re.compile(r"\d+[af]?(-real|-virtual)?")


@dataclass(frozen=True)
class Cublas:
    """cuBLAS headers and libraries: the toolkit's, or a PyPI package's."""

    include: Path
    lib: Path  # the folder holding libcublas.so.N and libcublasLt.so.N
    package: str | None = None  # "nvidia-cublas==13.0.2.14" when from PyPI

    def library(self, name: str) -> Path:
        found = sorted(self.lib.glob(f"lib{name}.so*"), key=lambda p: len(p.name))
        if not found:
            raise BuildError(f"no lib{name}.so in {self.lib}")
        return found[0]


@dataclass(frozen=True)
class CudaToolkit:
    nvcc: Path
    version: str  # "13.0"
    include: Path
    libs: tuple[Path, ...]


@dataclass(frozen=True)
class CudaBuild:
    """Everything a CUDA build needs to know; key_args go into the cache key."""

    toolkit: CudaToolkit
    arch: str  # CMAKE_CUDA_ARCHITECTURES
    driver: bool  # libcuda is present: link it and keep VMM on
    cublas: Cublas

    def key_args(self) -> list[str]:
        # only the architectures asked for; the default FA kernel set, not all quant pairs;
        # NCCL is for several GPUs
        args = ["-DGGML_CUDA=ON", f"-DCMAKE_CUDA_ARCHITECTURES={self.arch}",
                "-DGGML_CUDA_FA_ALL_QUANTS=OFF", "-DGGML_CUDA_NCCL=OFF"]
        if not self.driver:
            args.append("-DGGML_CUDA_NO_VMM=ON")
        if self.cublas.package:
            # llama_cpp/lib/ and nvidia/cuNN/lib/ share site-packages in every venv, so
            # the relative path is the same for all of them; \$ survives the generator's shell
            rel = os.path.relpath(self.cublas.lib, Path(sysconfig.get_paths()["platlib"]) / "llama_cpp" / "lib")
            args.append(f"-DCMAKE_SHARED_LINKER_FLAGS=-Wl,-rpath,\\$ORIGIN/{rel}")
        return args

    def key_extra(self) -> list[str]:
        return [f"cuda {self.toolkit.version}", f"cublas {self.cublas.package or 'toolkit'}"]

    def path_args(self) -> list[str]:
        """Paths on this machine: passed to CMake, left out of the key."""
        args = [f"-DCMAKE_CUDA_COMPILER={self.toolkit.nvcc}"]
        if self.cublas.package:
            args += [f"-DCUDA_cublas_LIBRARY={self.cublas.library('cublas')}",
                     f"-DCUDA_cublasLt_LIBRARY={self.cublas.library('cublasLt')}",
                     f"-DCMAKE_CUDA_FLAGS=-I{self.cublas.include}", f"-DCMAKE_CXX_FLAGS=-I{self.cublas.include}"]
        return args


def find_nvcc() -> Path:
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    for cand in (os.environ.get("CUDACXX"), home and f"{home}/bin/nvcc", shutil.which("nvcc"),
                 "/usr/local/cuda/bin/nvcc"):
        if cand and Path(cand).is_file():
            return Path(cand)
    raise BuildError("a CUDA build needs nvcc: none on PATH, in CUDACXX, CUDA_HOME or /usr/local/cuda (install the CUDA toolkit)")


def cuda_toolkit(nvcc: Path) -> CudaToolkit:
    """The toolkit as nvcc itself reports it (nvcc may be a wrapper script elsewhere)."""
    try:
        version = subprocess.run([str(nvcc), "--version"], capture_output=True, text=True, timeout=60).stdout
        dry = subprocess.run([str(nvcc), "--dryrun", "-c", "-x", "cu", os.devnull, "-o", os.devnull],
                             capture_output=True, text=True, timeout=60).stderr
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BuildError(f"could not run {nvcc}: {e}") from e
    m = re.search(r"release (\d+)\.(\d+)", version)
    top = re.search(r"^#\$ TOP=(.+)$", dry, re.M)
    if not m or not top:
        raise BuildError(f"{nvcc} did not report its CUDA version and folder (`nvcc --version`, `nvcc --dryrun`)")
    root = Path(top.group(1).strip()).resolve()
    include = next((Path(p).resolve() for p in re.findall(r'-I"?([^" ]+)', dry)), root / "include")
    libs = tuple(Path(p).resolve() for p in re.findall(r'-L"?([^" ]+)', dry) if "stubs" not in p) or (root / "lib64",)
    return CudaToolkit(root / "bin" / "nvcc", f"{m.group(1)}.{m.group(2)}", include, libs)


def cuda_arch(requested: str | None) -> str:
    """CMAKE_CUDA_ARCHITECTURES: as asked (RAAS_CUDA_ARCH), else this machine's GPUs."""
    if requested:
        archs = [a.strip() for a in requested.replace(",", ";").split(";") if a.strip()]
        if not archs or not all(CUDA_ARCH_RE.fullmatch(a) for a in archs):
            raise BuildError(f"RAAS_CUDA_ARCH={requested!r} is not a list of compute capabilities such as 90 or 86;90")
        return ";".join(archs)
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        out = []
    caps = sorted({c.replace(".", "") for c in out if re.fullmatch(r"\d+\.\d+", c)})
    if not caps:
        raise BuildError("no GPU found by nvidia-smi to build for: set RAAS_CUDA_ARCH to its compute capability "
                         "(e.g. RAAS_CUDA_ARCH=90 for an H100, 86 for an RTX 3090)")
    return ";".join(caps)


def has_cuda_driver() -> bool:
    import ctypes.util

    return ctypes.util.find_library("cuda") is not None


def toolkit_cublas(tk: CudaToolkit) -> Cublas | None:
    lib = next((d for d in tk.libs if any(d.glob("libcublas.so*"))), None)
    if lib and (tk.include / "cublas_v2.h").is_file():
        return Cublas(tk.include, lib)
    return None


def cublas_package(cuda_version: str) -> tuple[str, str]:
    """NVIDIA's PyPI package of cuBLAS for a toolkit: (name, requirement)."""
    major, minor = cuda_version.split(".")
    name = "nvidia-cublas" if int(major) >= 13 else f"nvidia-cublas-cu{major}"
    # same major.minor as nvcc: a newer cuBLAS minor may need a newer CUDA runtime than the toolkit's
    return name, f"{name}=={major}.{minor}.*"


def pypi_cublas(cuda_version: str) -> Cublas:
    """cuBLAS from PyPI, installed into this Python's environment unless a matching one is there."""
    from importlib import metadata

    name, requirement = cublas_package(cuda_version)
    try:
        have = metadata.version(name)
    except metadata.PackageNotFoundError:
        have = None
    if not (have and have.startswith(cuda_version + ".")):
        log(f"the CUDA toolkit has no cuBLAS: installing {requirement} from PyPI")
        r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", requirement], capture_output=True, text=True)
        if r.returncode != 0:
            raise BuildError(f"the CUDA toolkit has no cuBLAS and pip could not install {requirement}: "
                             f"{pip_failure_reason(r.stdout + r.stderr)}")
        importlib.invalidate_caches()
    dist = metadata.distribution(name)
    files = [Path(str(dist.locate_file(f))).resolve() for f in dist.files or []]
    header = next((f for f in files if f.name == "cublas_v2.h"), None)
    lib = next((f for f in files if f.name.startswith("libcublas.so")), None)
    if header is None or lib is None:
        raise BuildError(f"{name} {dist.version} holds no cublas_v2.h or libcublas.so")
    return Cublas(header.parent, lib.parent, f"{name}=={dist.version}")


def cuda_build(requested_arch: str | None) -> CudaBuild:
    tk = cuda_toolkit(find_nvcc())
    arch = cuda_arch(requested_arch)
    cublas = toolkit_cublas(tk) or pypi_cublas(tk.version)
    return CudaBuild(tk, arch, has_cuda_driver(), cublas)


# -- 5: the wheel ------------------------------------------------------------


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


def cmake_args_for(cuda: CudaBuild | None) -> list[str]:
    """The CMake flags that go into the cache key (no paths of this machine)."""
    return list(BASE_CMAKE_ARGS) + cpu_cmake_args() + (cuda.key_args() if cuda else [])


def build_wheel(src: Path, out: Path, cmake_args: list[str], jobs: int, isolation: bool) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    # scikit-build-core splits CMAKE_ARGS with shlex: quote each flag
    env["CMAKE_ARGS"] = shlex.join(cmake_args)
    env["CMAKE_BUILD_PARALLEL_LEVEL"] = str(jobs)
    if shutil.which("ccache"):
        # stable paths under the cache make repeat builds after a patch change mostly cache hits
        env["CMAKE_ARGS"] += " -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache"
        if any(a.startswith("-DGGML_CUDA=ON") for a in cmake_args):
            env["CMAKE_ARGS"] += " -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache"
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


# the backend installed into this venv, so that a later set-up keeps it
BACKEND_FILE = Path(sys.prefix) / "raas-local-backend.json"


def chosen_backend(args: argparse.Namespace) -> tuple[bool, str | None]:
    """CUDA or CPU, and the CUDA architectures asked for.

    --cuda/--cpu or RAAS_CUDA=1/0 choose; without either, an --install keeps the
    backend installed last in this venv (so `make test` after
    `make setup RAAS_CUDA=1` keeps the CUDA wheel) and a plain build is CPU.
    """
    recorded = {}
    if args.install and BACKEND_FILE.is_file():
        try:
            recorded = json.loads(BACKEND_FILE.read_text())
        except ValueError:
            recorded = {}
    cuda = args.cuda
    env = os.environ.get("RAAS_CUDA", "")
    if cuda is None and env:
        if env not in ("0", "1"):
            raise BuildError(f"RAAS_CUDA={env!r}: use RAAS_CUDA=1 (CUDA) or RAAS_CUDA=0 (CPU)")
        cuda = env == "1"
    if cuda is None:
        cuda = bool(recorded.get("cuda"))
    arch = args.cuda_arch or os.environ.get("RAAS_CUDA_ARCH") or recorded.get("arch")
    return cuda, arch


def build(args: argparse.Namespace) -> Path:
    cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    sdist = Path(args.sdist) if args.sdist else fetch_sdist(cache)
    expected = args.sdist_sha256 or (HERE / "sdist.sha256").read_text().split()[0]
    sdist_sha = verify_sdist(sdist, expected)
    if args.fetch_only:
        print(sdist)
        return sdist

    cache.mkdir(parents=True, exist_ok=True)
    inputs = Path(tempfile.mkdtemp(prefix="inputs-", dir=cache))
    try:
        return _build(args, cache, sdist, sdist_sha, snapshot(patch_files(Path(args.patches)), inputs / "patches"),
                      snapshot(native_sources(Path(args.native)), inputs / "native"))
    finally:
        shutil.rmtree(inputs, ignore_errors=True)


def _build(args: argparse.Namespace, cache: Path, sdist: Path, sdist_sha: str, patches: list[Path],
           sources: list[Path]) -> Path:
    args.cuda, arch = chosen_backend(args)  # resolved: later steps read args.cuda
    cuda = cuda_build(arch) if args.cuda else None
    cmake_args = cmake_args_for(cuda)
    src_key = source_key(sdist_sha, patches, sources)
    key = cache_key(src_key, cmake_args, cuda.key_extra() if cuda else [])
    version = wheel_version(src_key, key)
    slot = cache / "wheels" / key
    hit = sorted(slot.glob("*.whl")) if not args.force else []
    if not hit:
        with build_lock(cache, backend_name(args)):
            hit = sorted(slot.glob("*.whl")) if not args.force else []  # built while we waited?
            if not hit:
                build_args = cmake_args + (cuda.path_args() if cuda else [])
                wheel = build_into_slot(sdist, cache, slot, version, patches, sources, build_args, args)
    if hit:
        log(f"cache hit: {hit[0]}")
        wheel = hit[0]
    if args.install:
        install(wheel, version)
        BACKEND_FILE.write_text(json.dumps({"cuda": args.cuda, "arch": arch if args.cuda else None}) + "\n")
    print(wheel)
    return wheel


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--install", action="store_true", help="pip-install the wheel into this Python")
    backend = ap.add_mutually_exclusive_group()
    backend.add_argument("--cuda", action="store_const", const=True, dest="cuda",
                         help="build the CUDA backend (also RAAS_CUDA=1; kept by later --install runs)")
    backend.add_argument("--cpu", action="store_const", const=False, dest="cuda",
                         help="build the CPU backend (also RAAS_CUDA=0)")
    ap.add_argument("--cuda-arch", help="CMAKE_CUDA_ARCHITECTURES, e.g. 90 or 86;90 (also RAAS_CUDA_ARCH; "
                    "default: the GPUs nvidia-smi lists)")
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
