"""`raas-local run`: stream a reply to stdout, the cache on stderr (no -p on a terminal: the chat)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from raas_local import flags
from raas_local.errors import InputError


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="one-shot generation streamed to stdout (no -p on a terminal: chat)")
    flags.add_model_flags(p)
    flags.add_policy_flags(p)
    flags.add_sampling_flags(p)
    p.add_argument("-p", "--prompt", default=None, help="the question (without it: stdin, or the chat TUI on a terminal)")
    p.add_argument("--raw", action="store_true", help="send the prompt as is, without the chat template")
    p.add_argument("--ignore-eos", action="store_true", help="keep generating past end-of-sequence")
    p.add_argument("--stats-json", default=None, help="write the run's figures to this JSON file")
    p.add_argument("--no-live", action="store_true", help="no live cache line on stderr")
    p.set_defaults(func=cmd_run)


def cmd_run(args) -> int:
    if args.prompt is None:
        if sys.stdin.isatty() and sys.stdout.isatty():
            from raas_local.tui.cli import run_chat

            return run_chat(args)
        args.prompt = sys.stdin.read().strip()
        if not args.prompt:
            raise InputError("no prompt: pass -p PROMPT or text on stdin")
    return run_once(args)


def mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def live_line(policy: str, s) -> str:
    c = s.cache
    return (
        f"[{policy} {c.budget}] cells {c.used}/{c.budget} (pinned {c.pinned}, pages {c.pages}) "
        f"evicted {c.evictions} | {s.generated_tokens} tok {s.tok_per_s:.1f} tok/s"
    )


def summary_line(policy: str, s) -> str:
    c = s.cache
    return (
        f"raas-local: {s.generated_tokens} tokens in {s.decode_s:.2f}s ({s.tok_per_s:.1f} tok/s), "
        f"prompt {s.prompt_tokens} ({s.prefill_s:.2f}s) | policy {policy} budget {c.budget} | "
        f"peak KV {s.peak_kv_cells} cells ({mib(s.peak_kv_cells * c.bytes_per_cell)} vs dense {mib(c.kv_bytes_dense)}) | "
        f"evictions {c.evictions} pages ({c.evicted_cells} cells)"
    )


def stats_record(engine, s, finish_reason: str | None) -> dict:
    c = s.cache
    return {
        **engine.policy.as_dict(),
        "budget": c.budget,
        "page_size": engine.policy.page_size,
        "model": str(engine.model_path),
        "prompt_tokens": s.prompt_tokens,
        "generated_tokens": s.generated_tokens,
        "tok_per_s": round(s.tok_per_s, 3),
        "prefill_s": round(s.prefill_s, 4),
        "decode_s": round(s.decode_s, 4),
        "peak_kv_cells": s.peak_kv_cells,
        "peak_kv_bytes": s.peak_kv_cells * c.bytes_per_cell,
        "dense_kv_bytes": c.kv_bytes_dense,
        "evictions": c.evictions,
        "evicted_cells": c.evicted_cells,
        "n_cells": c.n_cells,
        "finish_reason": finish_reason,
    }


def run_once(args) -> int:
    from raas_local.engine import collect

    engine = flags.engine_from_args(args)
    live = not args.no_live and sys.stderr.isatty()
    last_live = 0.0
    last = None  # the latest event: its figures are reported even after Ctrl-C
    out = sys.stdout

    def show(ev) -> None:
        nonlocal last_live, last
        last = ev
        if ev.text:
            out.write(ev.text)
            out.flush()
        now = time.monotonic()
        if live and now - last_live > 0.25:
            last_live = now
            sys.stderr.write("\r\x1b[2K" + live_line(engine.policy.kind, ev.stats))
            sys.stderr.flush()

    try:
        collect(engine.generate(args.prompt, flags.sampling_from_args(args), raw=args.raw), show)
    finally:
        if live:
            sys.stderr.write("\r\x1b[2K")
        out.write("\n")
        out.flush()
        if last is not None:
            print(summary_line(engine.policy.kind, last.stats), file=sys.stderr)
            if args.stats_json:
                record = stats_record(engine, last.stats, last.finish_reason)
                Path(args.stats_json).write_text(json.dumps(record, indent=2) + "\n")
        engine.close()
    return 0
