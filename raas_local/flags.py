"""The flags every command shares, and the one place they become a policy, a sampling and an engine.

`run`, `chat`, `solve`, `bench` and the TUI helpers import this module; it
imports none of them (cli.py imports them all), so there is no import cycle.
Flags follow llama.cpp (-m, -c/--ctx-size, -n/--max-tokens, -ngl, -s, --temp,
-fa) plus the policy's (--policy, --budget, --page-size, ...).

Policy flags default to None, so "given by the user" is known: a given flag
reaches the selected kinds that have that setting (in a sweep, --heavy-ratio
reaches h2o only), a flag that none of them has is a one-line error, and a
setting not given takes the kind's own default (its dataclass field).
"""

from __future__ import annotations

import argparse

from raas_local.argtypes import nonneg_float, nonneg_int, positive_int, unit_ratio
from raas_local.errors import PolicyError

MODEL_HELP = "registry name, path to a .gguf, or org/repo[:quant] (default: the embedded SmolLM2-135M)"

# policy setting -> (argparse type, help); every setting of every kind has a flag here. A help without
# "(default" gets the default of the kind's dataclass field, so a default is written once.
POLICY_FLAGS = {
    "budget": (positive_int, "KV cells per sequence, prompt included (default 512; quest: cells each head attends)"),
    "page_size": (positive_int, "decode positions per page (default 16; not h2o, whose pages are single cells)"),
    "refresh_ratio": (float, "raas: share of pages refreshed per step"),
    "head_agg": (str, "raas: a cell's score over heads, sum or max"),
    "skip_layers": (nonneg_int, "raas: the first layers whose attention is not scored"),
    "page_score": (str, "raas: a page's score from its cells', max, mean or sum"),
    "protect_pages": (nonneg_int, "raas: recent decode pages, beyond the one being filled, never evicted"),
    "n_sink": (nonneg_int, "streaming: attention-sink cells"),
    "heavy_ratio": (float, "h2o: share of the budget for heavy hitters"),
}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _help(name: str) -> str:
    from dataclasses import MISSING, fields

    from raas_local.policies import KINDS

    text = POLICY_FLAGS[name][1]
    if "(default" in text:
        return text
    default = next(f.default for cls in KINDS.values() for f in fields(cls) if f.name == name and f.default is not MISSING)
    return f"{text} (default {default})"


def add_model_flags(p: argparse.ArgumentParser, positional_model: bool = True) -> None:
    """The model and where it runs: every command that loads one (solve's positional is its problems file)."""
    if positional_model:
        p.add_argument("model", nargs="?", default=None, help=MODEL_HELP)
        p.add_argument("-m", "--model", dest="model_flag", default=None, help="same as the positional MODEL")
    else:
        p.set_defaults(model=None)
        p.add_argument("-m", "--model", dest="model_flag", default=None, metavar="MODEL", help=MODEL_HELP)
    p.add_argument("-c", "--ctx-size", type=positive_int, default=None, help="KV cells to allocate (default: the budget; dense: the model's context)")
    p.add_argument("-ngl", "--n-gpu-layers", type=nonneg_int, default=0, help="layers to offload to the GPU")
    p.add_argument("-fa", "--flash-attn", action="store_true", help="use flash attention")
    p.add_argument("-t", "--threads", type=positive_int, default=None, help="CPU threads (default: all cores)")
    p.add_argument("-s", "--seed", type=int, default=0)
    p.add_argument("-v", "--verbose", action="store_true", help="show llama.cpp's log")


def add_policy_flags(p: argparse.ArgumentParser, budget_help: str | None = None, kind: bool = True) -> None:
    """--policy and one flag per policy setting, each None unless given."""
    if kind:
        p.add_argument("--policy", default="raas", help="KV-cache policy: raas (default), dense, streaming, h2o or quest")
    for name, (typ, _) in POLICY_FLAGS.items():
        meta = {"budget": "L", "page_size": "N", "n_sink": "N", "skip_layers": "N", "protect_pages": "N",
                "head_agg": "sum|max", "page_score": "max|mean|sum"}.get(name, "R")
        p.add_argument(flag(name), type=typ, default=None, metavar=meta,
                       help=budget_help if name == "budget" and budget_help else _help(name))


def add_sampling_flags(p: argparse.ArgumentParser, max_tokens: int = 2048) -> None:
    p.add_argument("-n", "--max-tokens", type=positive_int, default=max_tokens)
    p.add_argument("--temp", type=nonneg_float, default=0.6, help="temperature; 0 = greedy")
    p.add_argument("--top-p", type=unit_ratio, default=0.95)
    p.add_argument("--top-k", type=nonneg_int, default=40)


def given_settings(args) -> dict:
    """The policy settings the user gave on the command line."""
    return {k: getattr(args, k) for k in POLICY_FLAGS if getattr(args, k, None) is not None}


def check_flags_apply(kinds, names) -> None:
    """A flag that none of the selected kinds has is an error, never silently ignored.
    ``names`` are settings (``heavy_ratio``) or ``budgets``, the sweep over budgets."""
    from raas_local.policies.base import takers, unused_settings

    for name in names:
        setting = "budget" if name == "budgets" else name
        if unused_settings(kinds, [setting]):
            owners = takers(setting)
            raise PolicyError(f"{flag(name)} does not apply to policy {','.join(kinds)}"
                              f" ({'only to ' + ', '.join(owners) if owners else 'to no policy'})")


def policies_from_args(args, kinds: list[str], budgets: list[int] | None = None, defaults: dict | None = None) -> list:
    """Every selected kind, at every budget of ``budgets`` where it takes a budget (a kind
    without one, dense, once), with the given flags where they apply and ``defaults`` for
    settings not given (solve: the model's recommended budget). Validated here, all of them,
    before anything is loaded."""
    from raas_local.policies import make
    from raas_local.policies.base import kind_class

    given = given_settings(args)
    check_flags_apply(kinds, [*given, *(["budgets"] if budgets else [])])
    settings = {**(defaults or {}), **given}
    out = []
    for kind in kinds:
        cls = kind_class(kind)
        if budgets and "budget" in cls.settings():
            out += [make(kind, **{**settings, "budget": b}) for b in budgets]
        else:
            out.append(make(kind, **settings))
    return out


def policy_from_args(args, defaults: dict | None = None):
    """The policy of --policy and its flags."""
    return policies_from_args(args, [args.policy.lower()], defaults=defaults)[0]


def sampling_from_args(args, **changes):
    from raas_local.sampling import Sampling

    return Sampling(max_tokens=args.max_tokens, temperature=args.temp, top_p=args.top_p, top_k=args.top_k,
                    ignore_eos=bool(getattr(args, "ignore_eos", False)), **changes)


def model_arg(args) -> str | None:
    return getattr(args, "model_flag", None) or getattr(args, "model", None)


def engine_from_args(args, policy=None, n_seq: int = 1, n_ctx_dense: int | None = None):
    """The Engine of the model flags, with ``policy`` (default: the policy flags'), ``n_seq`` sequences
    and, without -c, ``n_ctx_dense`` cells per sequence for a kind that keeps every token."""
    from raas_local.engine import Engine

    return Engine(
        model=model_arg(args),
        policy=policy or policy_from_args(args),
        n_gpu_layers=args.n_gpu_layers,
        flash_attn=args.flash_attn,
        seed=args.seed,
        n_ctx=args.ctx_size,
        n_threads=args.threads,
        verbose=args.verbose,
        n_seq=n_seq,
        n_ctx_dense=n_ctx_dense,
    )
