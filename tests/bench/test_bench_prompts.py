"""The fidelity suite's prompts files (bench/prompts.py): the bundled set, and one-line errors for bad lines."""

from __future__ import annotations

import json

import pytest

from raas_local.bench import prompts
from raas_local.errors import InputError


def test_the_bundled_set_has_sweep_and_held_out_prompts_that_fit_budget_64():
    from raas_local.engine import Engine
    from raas_local.policies import make

    ps = prompts.load(prompts.BUNDLED)
    sweep, held = [p for p in ps if not p.held_out], [p for p in ps if p.held_out]
    assert len(sweep) >= 6 and 2 <= len(held) <= 3
    pol = make("raas", budget=64)
    with Engine(policy=make("dense"), n_ctx=128, n_threads=1) as eng:
        for p in ps:
            assert pol.fits(len(eng.tokenize(p.text))), p.id  # two pages to decode in at budget 64


def test_a_prompt_is_keyed_by_its_id_and_text():
    a, b = prompts.Prompt("x", "one"), prompts.Prompt("x", "two")
    assert a.key[0] == b.key[0] == "x" and a.key != b.key
    assert prompts.single("one").key == ("prompt", a.sha)


@pytest.mark.parametrize("line, needle", [
    ("not json", "not JSON"),
    ("[1, 2]", "expected an object"),
    ('{"prompt": "p"}', '"id" must be'),
    ('{"id": "a b", "prompt": "p"}', '"id" must be'),
    ('{"id": "../x", "prompt": "p"}', '"id" must be'),
    ('{"id": "a", "prompt": ""}', '"prompt" must be non-empty'),
    ('{"id": "a", "prompt": "p", "held_out": "yes"}', '"held_out" must be'),
    ('{"id": "ok", "prompt": "p"}\n{"id": "ok", "prompt": "q"}', "appears twice"),
])
def test_bad_lines_are_one_line_errors_naming_file_and_line(tmp_path, line, needle):
    f = tmp_path / "p.jsonl"
    f.write_text('{"id": "first", "prompt": "fine"}\n' + line + "\n")
    with pytest.raises(InputError) as e:
        prompts.load(f)
    msg = str(e.value)
    assert needle in msg and f"{f}:" in msg and "\n" not in msg


def test_empty_and_missing_files_are_errors(tmp_path):
    (tmp_path / "e.jsonl").write_text("\n\n")
    with pytest.raises(InputError, match="has no prompts"):
        prompts.load(tmp_path / "e.jsonl")
    with pytest.raises(InputError, match="cannot read prompts file"):
        prompts.load(tmp_path / "missing.jsonl")


def test_blank_lines_are_skipped_and_held_out_is_read(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"id": "a", "prompt": "x"}) + "\n\n" + json.dumps({"id": "b", "prompt": "y", "held_out": True}))
    assert prompts.load(f) == [prompts.Prompt("a", "x"), prompts.Prompt("b", "y", True)]
