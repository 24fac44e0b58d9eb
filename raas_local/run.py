"""`raas-local run -p PROMPT`: stream a reply to stdout, the cache on stderr."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from raas_local.engine import CacheStats, GenStats


def mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def live_line(policy: str, s: GenStats) -> str:
    c = s.cache
    return (
        f"[{policy} {c.budget}] cells {c.used}/{c.budget} (pinned {c.pinned}, pages {c.pages}) "
        f"evicted {c.evictions} | {s.generated_tokens} tok {s.tok_per_s:.1f} tok/s"
    )


def summary_line(policy: str, s: GenStats) -> str:
    c: CacheStats = s.cache
    return (
        f"raas-local: {s.generated_tokens} tokens in {s.decode_s:.2f}s ({s.tok_per_s:.1f} tok/s), "
        f"prompt {s.prompt_tokens} ({s.prefill_s:.2f}s) | policy {policy} budget {c.budget} | "
        f"peak KV {s.peak_kv_cells} cells ({mib(s.peak_kv_cells * c.bytes_per_cell)} vs dense {mib(c.kv_bytes_dense)}) | "
        f"evictions {c.evictions} pages ({c.evicted_cells} cells)"
    )


def stats_record(args, engine, s: GenStats, finish_reason: str | None) -> dict:
    c = s.cache
    return {
        "policy": engine.policy.kind,
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
    from raas_local.cli import engine_from_args

    engine = engine_from_args(args)
    live = not args.no_live and sys.stderr.isatty()
    last_live = 0.0
    stats, reason = None, None
    out = sys.stdout
    try:
        for ev in engine.generate(
            args.prompt, max_tokens=args.max_tokens, temperature=args.temp, top_p=args.top_p,
            top_k=args.top_k, ignore_eos=args.ignore_eos, raw=args.raw,
        ):
            if ev.text:
                out.write(ev.text)
                out.flush()
            stats, reason = ev.stats, ev.finish_reason
            now = time.monotonic()
            if live and now - last_live > 0.25:
                last_live = now
                sys.stderr.write("\r\x1b[2K" + live_line(engine.policy.kind, stats))
                sys.stderr.flush()
    finally:
        if live:
            sys.stderr.write("\r\x1b[2K")
        out.write("\n")
        out.flush()
        if stats is not None:
            print(summary_line(engine.policy.kind, stats), file=sys.stderr)
            if args.stats_json:
                Path(args.stats_json).write_text(json.dumps(stats_record(args, engine, stats, reason), indent=2) + "\n")
        engine.close()
    return 0
