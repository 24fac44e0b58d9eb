"""Helpers for tests/models (a uniquely named module: `conftest` is ambiguous as an import)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_gguf(path: Path, n_tensors: int = 2, n: int = 64, extra_kv: int = 0) -> Path:
    """A tiny valid GGUF (f32 tensors) written with the gguf package."""
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-test")
    w.add_context_length(128)
    w.add_array("tokenizer.ggml.tokens", [f"tok{i}" for i in range(16)])
    for i in range(extra_kv):
        w.add_uint32(f"test.extra.{i}", i)
    for i in range(n_tensors):
        w.add_tensor(f"blk.{i}.weight", np.arange(n * (i + 1), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
