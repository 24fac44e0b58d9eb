"""`models list|pull|rm` wiring as the lead's argparse CLI will use it."""

from __future__ import annotations

import argparse

import pytest

from raas_local.errors import ModelError
from raas_local.models import cli


def _parse(argv):
    parser = argparse.ArgumentParser(prog="raas-local")
    cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_list_prints_a_table_with_every_registry_model(hub, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    args = _parse(["models", "list"])
    assert args.func is cli.run and cli.run(args) == 0
    out = capsys.readouterr().out
    for name in ("smollm2-135m", "qwen3-0.6b", "qwq-32b", "marco-o1"):
        assert name in out
    assert "Qwen/Qwen3-0.6B-GGUF/Qwen3-0.6B-Q8_0.gguf" in out


def test_pull_and_rm(hub, capsys, gguf_bytes):
    hub.add("Qwen/Qwen3-0.6B-GGUF", "Qwen3-0.6B-Q8_0.gguf", gguf_bytes)
    assert cli.run(_parse(["models", "pull", "qwen3-0.6b"])) == 0
    assert capsys.readouterr().out.strip().endswith("Qwen3-0.6B-Q8_0.gguf")
    assert cli.run(_parse(["models", "rm", "qwen3-0.6b"])) == 0
    assert capsys.readouterr().out.startswith("removed ")
    with pytest.raises(ModelError, match="not installed"):
        cli.run(_parse(["models", "rm", "qwen3-0.6b"]))


def test_errors_are_one_line_with_the_model_exit_code(hub, capsys):
    assert cli.main(["models", "pull", "no-such-model"]) == ModelError.exit_code
    err = capsys.readouterr().err
    assert err.startswith("raas-local: error: unknown model") and err.count("\n") == 1
