"""The registry: models.toml parses, every entry is complete, the copies agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from raas_local.errors import ModelError
from raas_local.models import registry
from raas_local.models.registry import ModelSpec, all_models, embedded_spec, get

ROOT = Path(__file__).resolve().parents[2]

EXPECTED = {
    "smollm2-135m",
    "deepseek-r1-distill-qwen-1.5b",
    "deepseek-r1-distill-qwen-7b",
    "deepscaler-1.5b-preview",
    "qwen3-0.6b",
    "qwen3-1.7b",
    "qwen3-4b",
    "qwen3-8b",
    "qwq-32b",
    "marco-o1",
}


def test_root_and_packaged_registry_are_identical():
    # The package copy ships in wheels; the root copy is canonical (registry.py docstring).
    assert (ROOT / "models.toml").read_bytes() == (ROOT / "raas_local/models/models.toml").read_bytes()


def test_checkout_reads_the_root_file(monkeypatch):
    monkeypatch.delenv("RAAS_LOCAL_MODELS_TOML", raising=False)
    assert registry.registry_path() == ROOT / "models.toml"


def test_expected_entries_are_present_with_required_fields():
    specs = all_models()
    names = [s.name for s in specs]
    assert len(names) == len(set(names))
    assert EXPECTED <= set(names)
    for s in specs:
        assert isinstance(s, ModelSpec)
        assert s.file.endswith(".gguf") and s.quant.lower() in s.file.lower()
        assert "{problem}" in s.prompt_template
        assert s.recommended_budget > 0 and s.description
        assert len(s.think_tags) in (0, 2)
        assert s.embedded or (s.repo and "/" in s.repo)


def test_embedded_entry():
    s = embedded_spec()
    assert s.name == "smollm2-135m" and s.embedded and s.repo is None
    assert s.file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert s.think_tags == ()


def test_reasoning_models_have_think_tags_and_boxed_prompts():
    for name in EXPECTED - {"smollm2-135m"}:
        s = get(name)
        assert s.is_reasoning
        prompt = s.format_prompt("What is 1+1?")
        assert "What is 1+1?" in prompt and r"\boxed{}" in prompt  # literal replace keeps braces
    assert "Please reason step by step, and put your final answer within \\boxed{}." in get(
        "deepseek-r1-distill-qwen-1.5b"
    ).prompt_template


def test_get_is_case_insensitive_and_unknown_names_fail_with_one_line():
    assert get("QWEN3-4B").name == "qwen3-4b"
    with pytest.raises(ModelError) as e:
        get("no-such-model")
    assert "\n" not in str(e.value) and "qwen3-4b" in str(e.value)


@pytest.mark.parametrize(
    "body, needle",
    [
        ('["a"]\nname = "a"\n', "missing field"),
        ('["a"]\nname = "b"\nfile = "x-Q4.gguf"\nquant = "Q4"\nthink_tags = []\n'
         'prompt_template = "{problem}"\nrecommended_budget = 8\ndescription = "d"\nrepo = "o/r"\n', "differs"),
        ('["a"]\nname = "a"\nfile = "x-Q4.gguf"\nquant = "Q4"\nthink_tags = []\n'
         'prompt_template = "no placeholder"\nrecommended_budget = 8\ndescription = "d"\nrepo = "o/r"\n', "{problem}"),
        ('["a"]\nname = "a"\nfile = "x-Q4.gguf"\nquant = "Q4"\nthink_tags = []\n'
         'prompt_template = "{problem}"\nrecommended_budget = 8\ndescription = "d"\n', "needs 'repo'"),
        ('[a.b]\nname = "a.b"\n', "quote table names"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_bad_registry_files_are_one_line_errors(tmp_path, monkeypatch, body, needle):
    p = tmp_path / "models.toml"
    p.write_text(body)
    monkeypatch.setenv("RAAS_LOCAL_MODELS_TOML", str(p))
    with pytest.raises(ModelError) as e:
        all_models()
    assert needle in str(e.value) and "\n" not in str(e.value)
