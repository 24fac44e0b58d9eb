"""The shared flags: a given flag reaches the kinds that have it, and is an error for none."""

from __future__ import annotations

import pytest

from raas_local.cli import build_parser
from raas_local.errors import PolicyError
from raas_local.flags import policies_from_args, policy_from_args


def parse(*argv):
    return build_parser().parse_args(list(argv))


# raas's free choices at their shipped defaults (docs/raas-policy.md; the paper's: page score max, r = 0.5)
DEFAULTS = {"refresh_ratio": 0.25, "head_agg": "sum", "skip_layers": 0, "page_score": "mean", "protect_pages": 0}


def test_raas_flags_reach_raas_only():
    args = parse("run", "--page-score", "mean", "--protect-pages", "2", "--head-agg", "max", "--skip-layers", "2")
    assert policy_from_args(args).as_dict() == {"policy": "raas", "budget": 512, "page_size": 16, "refresh_ratio": 0.25,
                                                "head_agg": "max", "skip_layers": 2, "page_score": "mean",
                                                "protect_pages": 2}


def test_a_sweep_gives_each_kind_the_flags_it_has():
    args = parse("solve", "--sample", "--policies", "raas,h2o,dense", "--heavy-ratio", "0.2", "--page-size", "8",
                 "--budgets", "64,128")
    pols = policies_from_args(args, args.policies, args.budgets, defaults={"budget": 512})
    assert [p.tag for p in pols] == ["raas-64", "raas-128", "h2o-64", "h2o-128", "dense"]
    assert pols[0].as_dict() == {"policy": "raas", "budget": 64, "page_size": 8, **DEFAULTS}
    assert pols[2].as_dict() == {"policy": "h2o", "budget": 64, "heavy_ratio": 0.2}


def test_settings_not_given_take_the_kinds_defaults():
    assert policy_from_args(parse("run")).as_dict() == {"policy": "raas", "budget": 512, "page_size": 16, **DEFAULTS}
    assert policy_from_args(parse("run", "--policy", "dense")).as_dict() == {"policy": "dense"}
    # solve: the model's recommended budget unless --budget is given
    assert policy_from_args(parse("solve", "--policy", "h2o"), defaults={"budget": 300}).budget == 300
    assert policy_from_args(parse("solve", "--budget", "200"), defaults={"budget": 300}).budget == 200


@pytest.mark.parametrize("argv,msg", [
    (("run", "--heavy-ratio", "0.2"), "--heavy-ratio does not apply to policy raas (only to h2o)"),
    (("run", "--policy", "dense", "--budget", "256"), "--budget does not apply to policy dense (only to h2o, quest, raas, streaming)"),
    (("run", "--policy", "h2o", "--page-size", "8"), "--page-size does not apply to policy h2o"),
    (("solve", "--policies", "raas,dense", "--n-sink", "2"), "--n-sink does not apply to policy raas,dense (only to streaming)"),
    (("solve", "--policies", "dense", "--budgets", "64"), "--budgets does not apply to policy dense"),
])
def test_a_flag_for_none_of_the_kinds_is_refused(argv, msg):
    args = parse(*argv)
    kinds = getattr(args, "policies", None) or [args.policy]
    with pytest.raises(PolicyError, match="^" + msg.replace("(", r"\(").replace(")", r"\)")):
        policies_from_args(args, kinds, getattr(args, "budgets", None))
