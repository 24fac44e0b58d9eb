"""raas-local command line: run, chat, solve, bench, models.

Flags follow llama.cpp (-m, -c/--ctx-size, -n/--max-tokens, -ngl, -s, --temp,
-fa) plus --budget, --page-size and --policy. User errors print one line,
``raas-local: error: ...``, and exit with the error's code; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import sys

from raas_local.argtypes import OneLineErrorParser, nonneg_float, nonneg_int, positive_int, unit_ratio
from raas_local.errors import InputError, RaasError

DEFAULT_PROMPT = "What is 17*23? Think step by step."


MODEL_HELP = "registry name, path to a .gguf, or org/repo[:quant] (default: the embedded SmolLM2-135M)"


def add_model_flags(p: argparse.ArgumentParser, positional_model: bool = True, budget_default: int | None = 512,
                    budget_help: str = "KV cells per sequence, prompt included (default 512)") -> None:
    """The flags every command that loads a model takes (solve's positional is its problems file)."""
    if positional_model:
        p.add_argument("model", nargs="?", default=None, help=MODEL_HELP)
        p.add_argument("-m", "--model", dest="model_flag", default=None, help="same as the positional MODEL")
    else:
        p.set_defaults(model=None)
        p.add_argument("-m", "--model", dest="model_flag", default=None, metavar="MODEL", help=MODEL_HELP)
    p.add_argument("--policy", default="raas", help="KV-cache policy: raas (default), dense, streaming, h2o or quest")
    p.add_argument("--budget", type=positive_int, default=budget_default, metavar="L", help=budget_help)
    p.add_argument("--page-size", type=int, default=16, help="decode positions per page (default 16)")
    p.add_argument("--refresh-ratio", type=float, default=0.5, help="raas: share of pages refreshed per step (default 0.5)")
    p.add_argument("--n-sink", type=nonneg_int, default=4, help="streaming: attention-sink cells (default 4)")
    p.add_argument("--heavy-ratio", type=float, default=0.5, help="h2o: share of the budget for heavy hitters (default 0.5)")
    p.add_argument("-c", "--ctx-size", type=positive_int, default=None, help="KV cells to allocate (default: the budget; dense: the model's context)")
    p.add_argument("-ngl", "--n-gpu-layers", type=nonneg_int, default=0, help="layers to offload to the GPU")
    p.add_argument("-fa", "--flash-attn", action="store_true", help="use flash attention")
    p.add_argument("-t", "--threads", type=positive_int, default=None, help="CPU threads (default: all cores)")
    p.add_argument("-s", "--seed", type=int, default=0)
    p.add_argument("-v", "--verbose", action="store_true", help="show llama.cpp's log")


def add_sampling_flags(p: argparse.ArgumentParser, max_tokens: int = 2048) -> None:
    p.add_argument("-n", "--max-tokens", type=positive_int, default=max_tokens)
    p.add_argument("--temp", type=nonneg_float, default=0.6, help="temperature; 0 = greedy")
    p.add_argument("--top-p", type=unit_ratio, default=0.95)
    p.add_argument("--top-k", type=nonneg_int, default=40)


def policy_from_args(args):
    from raas_local.policies import CachePolicy

    return CachePolicy(kind=args.policy, budget=args.budget, page_size=args.page_size, refresh_ratio=args.refresh_ratio,
                       n_sink=getattr(args, "n_sink", 4), heavy_ratio=getattr(args, "heavy_ratio", 0.5))


def engine_from_args(args):
    from raas_local.engine import Engine

    return Engine(
        model=args.model_flag or args.model,
        policy=policy_from_args(args),
        n_gpu_layers=args.n_gpu_layers,
        flash_attn=args.flash_attn,
        seed=args.seed,
        n_ctx=args.ctx_size,
        n_threads=args.threads,
        verbose=args.verbose,
    )


def build_parser() -> argparse.ArgumentParser:
    ap = OneLineErrorParser(prog="raas-local", description="GGUF reasoning models with a RaaS KV cache")
    sub = ap.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="one-shot generation streamed to stdout (no -p on a terminal: chat)")
    add_model_flags(run)
    add_sampling_flags(run)
    run.add_argument("-p", "--prompt", default=None, help="the question (without it: stdin, or the chat TUI on a terminal)")
    run.add_argument("--raw", action="store_true", help="send the prompt as is, without the chat template")
    run.add_argument("--ignore-eos", action="store_true", help="keep generating past end-of-sequence")
    run.add_argument("--stats-json", default=None, help="write the run's figures to this JSON file")
    run.add_argument("--no-live", action="store_true", help="no live cache line on stderr")
    run.set_defaults(func=_cmd_run)

    try:
        from raas_local.models.cli import add_parser as add_models_parser

        add_models_parser(sub)
    except ImportError:
        pass
    for name in ("raas_local.solve.cli", "raas_local.bench.cli", "raas_local.tui.cli"):
        try:
            mod = __import__(name, fromlist=["add_parser"])
        except ImportError:
            continue
        mod.add_parser(sub)
    return ap


def _cmd_run(args) -> int:
    if args.prompt is None:
        if sys.stdin.isatty() and sys.stdout.isatty():
            try:
                from raas_local.tui.cli import run_chat
            except ImportError:
                raise InputError("no -p PROMPT given and the chat TUI is not available") from None
            return run_chat(args)
        args.prompt = sys.stdin.read().strip()
        if not args.prompt:
            raise InputError("no prompt: pass -p PROMPT or text on stdin")
    from raas_local.run import run_once

    return run_once(args)


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    try:
        return args.func(args) or 0
    except RaasError as e:
        print(f"raas-local: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("\nraas-local: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
