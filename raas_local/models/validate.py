"""Cheap structural check of a GGUF file, run before every load.

``validate_gguf`` walks the header, the metadata and the tensor table, then
checks that every tensor's data lies inside the file. It never reads tensor
data, so it costs a few page-ins of metadata (tens of milliseconds even for a
150k-token vocabulary), not a pass over gigabytes.

Why not ``gguf.GGUFReader``: it builds numpy views for every element of every
metadata array (slow for large vocabularies) and fails with assorted
exception types on damaged files. A small parser here gives one precise,
one-line ModelError per failure: missing path, directory, empty file, wrong
magic, unsupported version, metadata cut short, tensor data past the end.
The tensor byte sizes come from gguf's ``GGML_QUANT_SIZES`` table; a tensor
type this gguf version does not know is only checked for its start offset.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

from raas_local.errors import ModelError

GGUF_MAGIC = b"GGUF"
_DEFAULT_ALIGNMENT = 32
# Far above any real model; they stop a garbage header from driving huge loops.
_MAX_COUNT = 1 << 24
_MAX_DIMS = 8

# GGUF metadata value types -> struct format of one scalar (strings/arrays apart).
_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


class _Cut(Exception):
    """Metadata runs past the end of the file."""


class _Bad(Exception):
    """Metadata is structurally impossible."""


class _Cursor:
    def __init__(self, buf: mmap.mmap, size: int, endian: str) -> None:
        self.buf, self.size, self.endian, self.pos = buf, size, endian, 0

    def take(self, n: int) -> int:
        start = self.pos
        if n < 0 or start + n > self.size:
            raise _Cut(start)
        self.pos = start + n
        return start

    def unpack(self, fmt: str):
        fmt = self.endian + fmt
        start = self.take(struct.calcsize(fmt))
        return struct.unpack_from(fmt, self.buf, start)[0]

    def string(self) -> bytes:
        n = self.unpack("Q")
        start = self.take(n)
        return self.buf[start : start + n]

    def skip_value(self, vtype: int, depth: int = 0) -> None:
        if vtype in _SCALAR:
            self.take(struct.calcsize(_SCALAR[vtype]))
        elif vtype == _STRING:
            self.take(self.unpack("Q"))
        elif vtype == _ARRAY and depth < 4:
            etype, count = self.unpack("I"), self.unpack("Q")
            if count > self.size:  # every element takes at least one byte
                raise _Cut(self.pos)
            if etype in _SCALAR:
                self.take(count * struct.calcsize(_SCALAR[etype]))
            else:
                for _ in range(count):
                    self.skip_value(etype, depth + 1)
        else:
            raise _Bad(f"unknown metadata value type {vtype}")


def _tensor_nbytes(dims: list[int], ggml_type: int) -> int | None:
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError):
        return None
    n = 1
    for d in dims:
        n *= d
    return n // block * type_size


def validate_gguf(path: str | os.PathLike[str]) -> None:
    """Raise ModelError (one line) unless ``path`` is a complete-looking GGUF file."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelError(f"model file not found: {p}")
    if p.is_dir():
        raise ModelError(f"model path is a directory, not a GGUF file: {p}")
    try:
        size = p.stat().st_size
        if size == 0:
            raise ModelError(f"model file is empty: {p}")
        with p.open("rb") as f:
            magic = f.read(4)
            if magic != GGUF_MAGIC:
                raise ModelError(f"not a GGUF file (magic bytes {magic!r}, expected b'GGUF'): {p}")
            if size < 24:
                raise ModelError(f"truncated GGUF (header cut at byte {size}): {p}")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                _check(buf, size, p)
    except OSError as e:
        raise ModelError(f"cannot read model file {p}: {e.strerror or e}") from None


def _check(buf: mmap.mmap, size: int, p: Path) -> None:
    (version,) = struct.unpack_from("<I", buf, 4)
    endian = "<"
    if version & 0xFFFF == 0 and version:  # written on a big-endian host
        endian = ">"
        (version,) = struct.unpack_from(">I", buf, 4)
    if version not in (2, 3):
        raise ModelError(f"unsupported GGUF version {version} (need 2 or 3): {p}")
    cur = _Cursor(buf, size, endian)
    cur.pos = 8
    try:
        n_tensors, n_kv = cur.unpack("Q"), cur.unpack("Q")
        if n_tensors > _MAX_COUNT or n_kv > _MAX_COUNT:
            raise _Bad(f"header claims {n_tensors} tensors and {n_kv} metadata keys")
        alignment = _DEFAULT_ALIGNMENT
        for _ in range(n_kv):
            key = cur.string()
            vtype = cur.unpack("I")
            if key == b"general.alignment" and vtype == 4:
                alignment = cur.unpack("I")
                if alignment == 0 or alignment & (alignment - 1):
                    raise _Bad(f"general.alignment {alignment} is not a power of two")
            else:
                cur.skip_value(vtype)
        tensors = []
        for _ in range(n_tensors):
            name = cur.string().decode("utf-8", "replace")
            n_dims = cur.unpack("I")
            if n_dims > _MAX_DIMS:
                raise _Bad(f"tensor '{name}' has {n_dims} dimensions")
            dims = [cur.unpack("Q") for _ in range(n_dims)]
            tensors.append((name, dims, cur.unpack("I"), cur.unpack("Q")))
    except _Cut as e:
        raise ModelError(f"truncated GGUF (metadata cut at byte {e.args[0]} of {size}): {p}") from None
    except _Bad as e:
        raise ModelError(f"corrupt GGUF ({e}): {p}") from None
    except UnicodeDecodeError:  # pragma: no cover - decode uses errors="replace"
        raise ModelError(f"corrupt GGUF (bad tensor name): {p}") from None

    data_start = -(-cur.pos // alignment) * alignment
    for name, dims, ggml_type, offset in tensors:
        start = data_start + offset
        nbytes = _tensor_nbytes(dims, ggml_type) or 0
        if start + nbytes > size:
            raise ModelError(
                f"truncated GGUF (tensor '{name}' data ends at byte {start + nbytes}, "
                f"file has {size}): {p}"
            )
