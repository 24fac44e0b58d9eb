"""Models from the Hugging Face Hub: pull, locate in the cache, remove, list.

Downloads go through ``huggingface_hub.hf_hub_download``: its progress bars,
its standard cache (``$HF_HOME``/``$HF_HUB_CACHE``), its endpoint
(``$HF_ENDPOINT``) and its offline switch (``$HF_HUB_OFFLINE``). Settings are
read from ``huggingface_hub.constants`` at call time, never copied.

Refs (what ``pull``/``rm`` accept):
- a registry name, ``qwen3-4b``, or ``qwen3-4b:Q8_0`` for another file of the
  same repo;
- ``org/repo`` or ``org/repo:QUANT``, like llama.cpp's ``-hf``. An ``org/repo``
  that a registry entry uses means that entry (and, without a quant, its
  file). Otherwise the file is
  chosen from the repo listing (``HfApi().list_repo_files`` online, the cache
  offline) among single-file GGUFs (split shards and ``mmproj`` projectors are
  skipped):
  * with ``:QUANT``: the file whose name ends in the quant (``-Q4_0`` is not
    ``-Q4_0_4_4``), else the only file whose name contains it
    (case-insensitive); ambiguity is an error that lists the candidates;
  * without: the first (sorted) file containing ``Q4_K_M``, else the first
    GGUF - llama.cpp's default too.

Integrity (a corrupt or interrupted download is never returned): the Hub's
ETag of an LFS file is its sha256 and names the blob in the cache, and
huggingface_hub only checks the size. So every file returned here has its
blob hashed against that name once (remembered by a marker under
``models_dir()/verified``; a git-stored file's 40-hex ETag is checked as a git
blob sha1), then ``validate_gguf`` runs. A file failing either is deleted from
the cache and ModelError says to pull again.

Offline (``HF_HUB_OFFLINE=1``), ``pull`` returns the cached file or fails with
the command to run once online. Nothing here downloads implicitly: resolve.py
only looks in the cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raas_local import paths
from raas_local.errors import ModelError
from raas_local.models import integrity
from raas_local.models.embedded import (
    EMBEDDED_SHA256,
    cached_embedded_path,
    embedded_model_path,
    marker_path,
    package_gguf,
    remove_embedded_copy,
)
from raas_local.models.registry import ModelSpec, all_models, find
from raas_local.models.validate import validate_gguf

_REPO_RE = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_SHARD_RE = re.compile(r"-\d{5}-of-\d{5}\.gguf$", re.IGNORECASE)
_GIT_SHA1_RE = re.compile(r"[0-9a-f]{40}")
# httpx / requests connection failures, matched by name: neither library is imported here.
_NETWORK_ERRORS = {"ConnectError", "ConnectTimeout", "ReadTimeout", "TimeoutException", "ConnectionError"}


@dataclass(frozen=True)
class HubRef:
    """A parsed ref: the repo, an optional quant, and the registry entry if any."""

    repo_id: str | None
    quant: str | None = None
    spec: ModelSpec | None = None

    @property
    def default_file(self) -> str | None:
        """The file known without listing the repo (registry entry, default quant)."""
        if self.spec is not None and (self.quant is None or self.quant.lower() == self.spec.quant.lower()):
            return self.spec.file
        return None

    @property
    def label(self) -> str:
        """How to name this ref back to the user (what `models pull` accepts)."""
        base = self.spec.name if self.spec is not None else str(self.repo_id)
        return f"{base}:{self.quant}" if self.quant else base


def is_hub_ref(text: str) -> bool:
    """True for ``org/repo`` or ``org/repo:QUANT`` (whether or not the repo exists)."""
    return bool(_REPO_RE.fullmatch(text.partition(":")[0]))


def parse_ref(spec_or_ref: ModelSpec | str) -> HubRef:
    """A registry name, ``NAME:QUANT``, ``org/repo`` or ``org/repo:QUANT``."""
    if isinstance(spec_or_ref, ModelSpec):
        return HubRef(spec_or_ref.repo, None, spec_or_ref)
    text = spec_or_ref.strip()
    base, _, quant_text = text.partition(":")
    quant = quant_text or None
    spec = find(base)
    if spec is not None:
        if spec.embedded and quant and quant.lower() != spec.quant.lower():
            raise ModelError(f"the embedded model {spec.name} has only quant {spec.quant}")
        return HubRef(spec.repo, quant, spec)
    if _REPO_RE.fullmatch(base):
        # A registry repo keeps its entry (think tags, prompt) for any of its quants.
        for s in all_models():
            if s.repo and s.repo.lower() == base.lower():
                return HubRef(s.repo, quant, s)
        return HubRef(base, quant, None)
    known = ", ".join(s.name for s in all_models())
    raise ModelError(f"unknown model '{text}': not a registry name ({known}) nor org/repo[:quant]")


# --- huggingface_hub access (imported lazily: importing raas_local.models stays cheap) ---


def _hf() -> Any:
    import huggingface_hub

    return huggingface_hub


def _hf_errors() -> Any:
    import huggingface_hub.utils as hf_utils  # re-exports the error classes in 0.2x and 1.x+

    return hf_utils


def _constants() -> Any:
    import huggingface_hub.constants as constants

    return constants


def hub_cache_dir() -> Path:
    return Path(_constants().HF_HUB_CACHE)


def is_offline() -> bool:
    return bool(_constants().HF_HUB_OFFLINE)


# --- choosing a file among a repo's files ---


def pick_file(files: list[str], quant: str | None, repo_id: str) -> str:
    """The GGUF of ``files`` that ``quant`` designates (see the module docstring)."""
    ggufs = sorted(
        f
        for f in files
        if f.lower().endswith(".gguf") and not _SHARD_RE.search(f) and "mmproj" not in Path(f).name.lower()
    )
    if not ggufs:
        raise ModelError(f"no single-file GGUF in {repo_id}")
    names = {f: Path(f).name.lower() for f in ggufs}
    if quant is None:
        preferred = [f for f in ggufs if "q4_k_m" in names[f]]
        return (preferred or ggufs)[0]
    q = quant.lower()
    tail = re.compile(rf"(^|[-._]){re.escape(q)}(\.gguf)?$")
    matches = [f for f in ggufs if tail.search(names[f])] or [f for f in ggufs if q in names[f]]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        available = ", ".join(Path(f).name for f in ggufs[:8]) + (", ..." if len(ggufs) > 8 else "")
        raise ModelError(f"no GGUF matching '{quant}' in {repo_id} (available: {available})")
    raise ModelError(f"quant '{quant}' is ambiguous in {repo_id}: {', '.join(matches)}")


def _list_repo_files(repo_id: str) -> list[str]:
    try:
        return list(_hf().HfApi().list_repo_files(repo_id))
    except Exception as e:  # mapped to one line below
        raise _download_error(e, repo_id, None) from None


# --- the cache ---


def _repo_folder(repo_id: str) -> Path:
    return hub_cache_dir() / ("models--" + repo_id.replace("/", "--"))


def _cached_files(repo_id: str) -> dict[str, Path]:
    """Files of ``repo_id`` present in the cache: relative name -> snapshot path.
    The snapshot ``refs/main`` points to wins over older ones."""
    folder = _repo_folder(repo_id)
    snapshots = folder / "snapshots"
    if not snapshots.is_dir():
        return {}
    try:
        main = (folder / "refs" / "main").read_text().strip()
    except OSError:
        main = None
    order = sorted(snapshots.iterdir(), key=lambda p: (p.name == main, p.stat().st_mtime))
    found: dict[str, Path] = {}
    for snap in order:  # later (preferred) snapshots overwrite earlier ones
        for p in snap.rglob("*"):
            if p.is_file():
                found[p.relative_to(snap).as_posix()] = p
    return found


def _cached_pick(ref: HubRef) -> tuple[str, Path] | None:
    """(name in the repo, snapshot path) of the cached file ``ref`` designates, or None."""
    if ref.repo_id is None:
        return None
    files = _cached_files(ref.repo_id)
    name = ref.default_file
    if name is None:
        if not files:
            return None
        try:
            name = pick_file(list(files), ref.quant, ref.repo_id)
        except ModelError:
            return None
    return (name, files[name]) if name in files else None


def locate_cached(ref: HubRef) -> Path | None:
    """The cached file for ``ref`` (no network, no checks), or None."""
    if ref.spec is not None and ref.spec.embedded:
        p = cached_embedded_path()
        return p if p.is_file() else None
    hit = _cached_pick(ref)
    return hit[1] if hit else None


def _marker_for(digest: str) -> Path:
    return paths.models_dir() / "verified" / f"{digest}.json"


def _git_blob_sha1(path: Path) -> str:
    h = hashlib.sha1()
    h.update(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _delete_cached(pointer: Path) -> None:
    """Remove a cached file: every snapshot link to its blob, then the blob."""
    blob = pointer.resolve()
    folder = blob.parent.parent if blob.parent.name == "blobs" else None
    if folder is not None:
        for link in (folder / "snapshots").rglob("*"):
            if link.is_symlink() and link.resolve() == blob:
                link.unlink(missing_ok=True)
    pointer.unlink(missing_ok=True)
    blob.unlink(missing_ok=True)


def _note_hashing(blob: Path, marker: Path, digest: str) -> None:
    # Hashing a multi-GB file takes seconds: say why the command pauses (once per file).
    size = blob.stat().st_size
    if size >= 256 << 20 and not integrity.marker_ok(blob, marker, digest):
        print(f"raas-local: verifying checksum of {blob.name[:12]}... ({size / 1e9:.1f} GB, once)", file=sys.stderr)


def checked(pointer: Path, label: str) -> Path:
    """``pointer`` if its blob matches its ETag and is a valid GGUF; else delete it and raise."""
    blob = pointer.resolve()
    etag = blob.name
    bad: str | None = None
    if not blob.is_file():
        bad = "its blob is missing"
    elif integrity.is_sha256(etag):
        _note_hashing(blob, _marker_for(etag), etag)
        found = integrity.verify_once(blob, etag, _marker_for(etag))
        if found is not None:
            bad = f"sha256 {found[:16]}... does not match the Hub's {etag[:16]}..."
    elif _GIT_SHA1_RE.fullmatch(etag):
        marker = _marker_for(etag)
        if not integrity.marker_ok(blob, marker, etag):
            _note_hashing(blob, marker, etag)
            if _git_blob_sha1(blob) != etag:
                bad = f"git sha1 does not match the Hub's {etag[:12]}..."
            else:
                integrity.write_marker(blob, marker, etag)
    if bad is None:
        try:
            validate_gguf(pointer)
            return pointer
        except ModelError as e:
            bad = str(e)
    _delete_cached(pointer)
    raise ModelError(f"{pointer.name} from {label} is corrupt ({bad}); deleted it, run: raas-local models pull {label}")


# --- pull / rm / list ---


def _download_error(e: Exception, repo_id: str, filename: str | None) -> ModelError:
    err = _hf_errors()
    what = f"{repo_id}/{filename}" if filename else repo_id
    if isinstance(e, err.GatedRepoError):
        return ModelError(f"{repo_id} is gated: accept its terms on the Hub and log in (`hf auth login`)")
    if isinstance(e, err.RepositoryNotFoundError):
        return ModelError(f"repository not found on the Hugging Face Hub: {repo_id}")
    if isinstance(e, err.RevisionNotFoundError):
        return ModelError(f"revision not found on the Hugging Face Hub: {what}")
    if isinstance(e, err.LocalEntryNotFoundError):
        return ModelError(
            f"cannot reach the Hugging Face Hub for {what} and it is not cached; "
            "check the network (or HF_ENDPOINT) and retry"
        )
    if isinstance(e, err.EntryNotFoundError):
        return ModelError(f"file not found on the Hugging Face Hub: {what}")
    if isinstance(e, err.OfflineModeIsEnabled):
        return ModelError(f"HF_HUB_OFFLINE is set: cannot list or download {what}")
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    if type(e).__name__ in _NETWORK_ERRORS:
        return ModelError(f"cannot reach the Hugging Face Hub for {what} ({first}); check the network or HF_ENDPOINT")
    if isinstance(e, err.HfHubHTTPError):
        return ModelError(f"download of {what} failed: {first}")
    if isinstance(e, OSError):
        return ModelError(f"download of {what} failed ({first}); run the pull again")
    return ModelError(f"download of {what} failed: {type(e).__name__}: {first}")


def pull(spec_or_ref: ModelSpec | str) -> Path:
    """Download (or find in the cache) the GGUF of a registry name or hub ref; verified."""
    ref = parse_ref(spec_or_ref)
    if ref.spec is not None and ref.spec.embedded:
        return embedded_model_path()
    assert ref.repo_id is not None
    if is_offline():
        cached = locate_cached(ref)
        if cached is None:
            raise ModelError(
                f"{ref.label} is not in the Hugging Face cache and HF_HUB_OFFLINE is set; "
                f"with network access run: raas-local models pull {ref.label}"
            )
        return checked(cached, ref.label)
    filename = ref.default_file
    if filename is None and ref.quant is not None:
        # A cached file for this quant needs no listing: hf_hub_download below still checks it
        # with a HEAD request, and falls back to it at once when the network is down.
        hit = _cached_pick(ref)
        filename = hit[0] if hit else None
    if filename is None:
        filename = pick_file(_list_repo_files(ref.repo_id), ref.quant, ref.repo_id)
    cached = _cached_files(ref.repo_id).get(filename)
    if cached is not None:
        # A damaged cached copy is deleted here so that the download below replaces it.
        try:
            checked(cached, ref.label)
        except ModelError:
            pass
    try:
        path = _hf().hf_hub_download(ref.repo_id, filename)
    except Exception as e:  # every failure becomes one line
        raise _download_error(e, ref.repo_id, filename) from None
    return checked(Path(path), ref.label)


def rm(name: str) -> list[Path]:
    """Remove a pulled model from the HF cache (or the embedded cache copy).
    Returns the removed paths; ModelError if nothing was installed."""
    ref = parse_ref(name)
    if ref.spec is not None and ref.spec.embedded:
        removed = remove_embedded_copy()
    else:
        removed = _rm_hub(ref)
    if not removed:
        raise ModelError(f"{ref.label} is not installed")
    return removed


def _rm_hub(ref: HubRef) -> list[Path]:
    assert ref.repo_id is not None
    hf = _hf()
    if not hub_cache_dir().is_dir():
        return []
    info = hf.scan_cache_dir(hub_cache_dir())
    repo = next(
        (r for r in info.repos if r.repo_type == "model" and r.repo_id.lower() == ref.repo_id.lower()), None
    )
    if repo is None:
        return []
    # `org/repo` alone (no registry entry, no quant) removes every file of the repo.
    whole_repo = ref.spec is None and ref.quant is None
    if whole_repo:
        target = None
    else:
        names = {f.file_name for rev in repo.revisions for f in rev.files}
        target = ref.default_file
        if target is None:
            try:
                target = Path(pick_file(sorted(names), ref.quant, ref.repo_id)).name
            except ModelError:
                return []
    files = [f for rev in repo.revisions for f in rev.files if target is None or f.file_name == Path(target).name]
    if not files:
        return []
    # Scope the cache info to this repo: delete_revisions matches commit hashes across all repos.
    info = dataclasses.replace(info, repos=frozenset({repo}))
    blobs = {f.blob_path for f in files}
    removed = [f.file_path for f in files]
    if whole_repo or all(f in files for rev in repo.revisions for f in rev.files):
        # Nothing else cached for this repo: drop it entirely (refs, snapshots, blobs).
        info.delete_revisions(*(rev.commit_hash for rev in repo.revisions)).execute()
    elif hasattr(info, "delete_files"):  # huggingface_hub >= 1.x
        info.delete_files(*files).execute()
    else:  # older huggingface_hub: unlink the snapshot entries, then unshared blobs
        keep = {f.blob_path for rev in repo.revisions for f in rev.files if f not in files}
        for f in files:
            f.file_path.unlink(missing_ok=True)
        for b in blobs - keep:
            b.unlink(missing_ok=True)
    for b in blobs:
        _marker_for(b.name).unlink(missing_ok=True)
    return removed


def list_models() -> list[dict[str, Any]]:
    """One row per registry model, then one per other GGUF found in the HF cache.

    Row keys: name, installed (bool), size (bytes or None), path (Path or None),
    repo, file, description. ``name`` is always a ref that pull/rm/resolve accept.
    The embedded model counts as installed while its wheel is (path: the verified
    cache copy if any, else the wheel's file). Nothing is hashed here.
    """
    rows: list[dict[str, Any]] = []
    seen: set[Path] = set()
    for spec in all_models():
        ref = HubRef(spec.repo, None, spec)
        if spec.embedded:
            path = _embedded_row_path()
        else:
            path = locate_cached(ref)
        rows.append(_row(spec.name, path, spec.repo, spec.file, spec.description))
        if path is not None:
            seen.add(path.resolve())
    for repo_dir in sorted(hub_cache_dir().glob("models--*")) if hub_cache_dir().is_dir() else []:
        repo_id = repo_dir.name[len("models--") :].replace("--", "/")
        for name, path in sorted(_cached_files(repo_id).items()):
            if name.lower().endswith(".gguf") and path.resolve() not in seen:
                rows.append(_row(f"{repo_id}:{Path(name).name}", path, repo_id, name, ""))
    return rows


def _embedded_row_path() -> Path | None:
    """The verified cache copy, else the wheel's file (verified on first use), else None.
    No hashing here: listing must stay instant."""
    cached = cached_embedded_path()
    if cached.is_file() and integrity.marker_ok(cached, marker_path(), EMBEDDED_SHA256):
        return cached
    return package_gguf()


def _row(name: str, path: Path | None, repo: str | None, file: str, description: str) -> dict[str, Any]:
    size = None
    if path is not None:
        try:
            size = os.stat(path).st_size
        except OSError:
            path = None
    return {
        "name": name,
        "installed": path is not None,
        "size": size,
        "path": path,
        "repo": repo,
        "file": file,
        "description": description,
    }
