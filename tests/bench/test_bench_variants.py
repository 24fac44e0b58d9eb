"""`bench --policies kind[:setting=value;...]`: parsing, names, the settings in the store key,
and the one-line errors (bench/variants.py). No model needed but for the CLI error cases."""

from __future__ import annotations

import subprocess
import sys

import pytest

from raas_local.bench import variants
from raas_local.errors import InputError, PolicyError
from raas_local.policies import make


def test_items_parse_into_kinds_with_typed_settings():
    specs = variants.parse("dense, raas,raas:refresh_ratio=0.25,streaming:n_sink=2 ; ,h2o:heavy-ratio=0.3")
    assert [(s.kind, s.settings) for s in specs] == [
        ("dense", {}), ("raas", {}), ("raas", {"refresh_ratio": 0.25}), ("streaming", {"n_sink": 2}),
        ("h2o", {"heavy_ratio": 0.3})]
    assert isinstance(specs[3].settings["n_sink"], int)


def test_names_show_what_differs_from_the_kinds_defaults():
    assert variants.policy_name(make("raas", budget=512)) == "raas-512"
    assert variants.policy_name(make("raas", budget=64, refresh_ratio=0.5)) == "raas[refresh_ratio=0.5]-64"
    assert variants.policy_name(make("streaming", budget=128, n_sink=0)) == "streaming[n_sink=0]-128"
    assert variants.policy_name(make("dense")) == "dense"
    # spelling out a default is the plain kind: the same run, the same name
    assert variants.policy_name(make("raas", budget=64, refresh_ratio=0.25)) == "raas-64"
    assert variants.series("raas", {"refresh_ratio": 0.75}) == "raas[refresh_ratio=0.75]"
    assert variants.series("raas", None) == "raas"  # a record from before settings were stored


def test_the_settings_key_holds_every_setting_so_no_two_variants_share_a_record():
    from raas_local.bench.store import key

    a, b = make("raas", budget=64), make("raas", budget=64, refresh_ratio=0.5)
    assert variants.settings(a)["refresh_ratio"] == 0.25
    assert "budget" not in variants.settings(a) and "page_size" not in variants.settings(a)
    ra = {"suite": "fidelity", "policy": "raas", "budget": 64, "settings": variants.settings(a)}
    rb = {**ra, "settings": variants.settings(b)}
    assert key(ra) != key(rb)
    # the key does not depend on the order the settings were written in
    assert key({**ra, "settings": dict(reversed(list(ra["settings"].items())))}) == key(ra)
    assert key({k: v for k, v in ra.items() if k != "settings"}) != key(ra)  # old records: measured again


@pytest.mark.parametrize("text, error, needle", [
    ("streaming:refresh_ratio=0.25", PolicyError, "policy streaming has no setting 'refresh_ratio'"),
    ("dense:refresh_ratio=0.25", PolicyError, "it has none to vary"),
    ("raas:refresh_ratio", InputError, "expected setting=value"),
    ("raas:refresh_ratio=abc", InputError, "raas refresh_ratio='abc'"),
    ("raas:budget=64", InputError, "--budget/--budgets"),
    ("raas:page_size=8", InputError, "--page-size"),
    ("nosuch", PolicyError, "unknown policy 'nosuch'"),
    (" , ", InputError, "names no policy"),
])
def test_bad_items_are_one_line_errors(text, error, needle):
    with pytest.raises(error) as e:
        variants.parse(text)
    assert needle in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("policies, code, needle", [
    ("raas,streaming:refresh_ratio=0.25", 3, "policy streaming has no setting"),
    ("raas:refresh_ratio=2", 3, "refresh ratio must be in (0, 1]"),  # the kind's own check, before any work
])
def test_the_cli_refuses_a_bad_variant_before_measuring(tmp_path, policies, code, needle):
    from cli_testutil import assert_one_line_error

    r = subprocess.run([sys.executable, "-m", "raas_local.cli", "bench", "--suite", "fidelity", "--chain", "8",
                        "--budgets", "64", "--policies", policies, "-o", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert_one_line_error(r, code, needle)
    assert not (tmp_path / "o" / "results.json").exists()


def test_policy_flags_reach_the_kinds_that_have_them_and_variants_win(tmp_path):
    from raas_local.bench.plan import make_plan
    from raas_local.cli import build_parser

    args = build_parser().parse_args(["bench", "--policies", "raas,raas:refresh_ratio=0.75,streaming",
                                      "--refresh-ratio", "0.5", "--budgets", "64", "-o", str(tmp_path)])
    plan = make_plan(args)
    names = [variants.policy_name(p) for p in plan.budget_items()]
    assert names == ["raas[refresh_ratio=0.5]-64", "raas[refresh_ratio=0.75]-64", "streaming-64"]
    args = build_parser().parse_args(["bench", "--policies", "streaming", "--refresh-ratio", "0.25", "-o", str(tmp_path)])
    with pytest.raises(PolicyError, match="--refresh-ratio does not apply to policy streaming"):
        make_plan(args)


def test_a_variant_that_spells_out_a_default_is_measured_once(tmp_path):
    from raas_local.bench.plan import make_plan
    from raas_local.cli import build_parser

    args = build_parser().parse_args(["bench", "--policies", "dense,raas,raas:refresh_ratio=0.25", "--budgets", "64,128",
                                      "-o", str(tmp_path)])
    plan = make_plan(args)
    assert [variants.policy_name(p) for p in plan.budget_items()] == ["dense", "raas-64", "raas-128"]
    assert [variants.policy_name(p) for _, p in plan.length_items()][:2] == ["dense", "raas-512"]
