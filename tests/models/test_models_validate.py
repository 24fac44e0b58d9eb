"""validate_gguf: valid tiny GGUFs pass; each kind of damage is one clear line."""

from __future__ import annotations

import pytest
from models_testutil import write_gguf

from raas_local.errors import ModelError
from raas_local.models import validate_gguf


def _err(path) -> str:
    with pytest.raises(ModelError) as e:
        validate_gguf(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_valid_gguf_passes(tmp_path):
    validate_gguf(write_gguf(tmp_path / "ok.gguf"))
    validate_gguf(write_gguf(tmp_path / "many.gguf", n_tensors=5, extra_kv=20))


def test_missing_path_and_directory(tmp_path):
    assert "model file not found" in _err(tmp_path / "absent.gguf")
    assert "directory" in _err(tmp_path)


def test_text_file_and_empty_file(tmp_path):
    text = tmp_path / "readme.gguf"
    text.write_text("this is not a model\n")
    assert "not a GGUF file" in _err(text)
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    assert "empty" in _err(empty)


@pytest.mark.parametrize("cut", [6, 16, 40])
def test_truncated_in_header_or_metadata(tmp_path, cut):
    data = write_gguf(tmp_path / "src.gguf").read_bytes()
    bad = tmp_path / "cut.gguf"
    bad.write_bytes(data[:cut])
    assert "truncated GGUF" in _err(bad)


def test_truncated_in_tensor_data(tmp_path):
    data = write_gguf(tmp_path / "src.gguf").read_bytes()
    bad = tmp_path / "cut.gguf"
    bad.write_bytes(data[:-10])
    msg = _err(bad)
    assert "truncated GGUF" in msg and "tensor 'blk.1.weight'" in msg


def test_unsupported_version_and_absurd_header(tmp_path):
    data = bytearray(write_gguf(tmp_path / "src.gguf").read_bytes())
    v1 = tmp_path / "v1.gguf"
    v1.write_bytes(bytes(data[:4]) + (1).to_bytes(4, "little") + bytes(data[8:]))
    assert "version 1" in _err(v1)
    huge = tmp_path / "huge.gguf"
    huge.write_bytes(bytes(data[:8]) + (2**40).to_bytes(8, "little") + bytes(data[16:]))
    assert "corrupt GGUF" in _err(huge)

