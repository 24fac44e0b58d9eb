"""`raas-local bench`: suites of measurements written to results.json and a markdown table.

Records already in OUT/results.json are kept and not measured again (resume a
long run by repeating the command; --force remeasures).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from raas_local.errors import InputError

SUITES = ("speed",)


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="measure policies x budgets: decode speed and KV memory vs length")
    p.add_argument("--suite", default="speed", help=f"comma-separated suites: {', '.join(SUITES)}")
    p.add_argument("-m", "--model", default=None, help="model (default: the embedded SmolLM2-135M)")
    p.add_argument("--policies", default="dense,raas", help="comma-separated policies (default dense,raas)")
    p.add_argument("--budget", type=int, default=512, help="budget of the evicting policies (default 512)")
    p.add_argument("--page-size", type=int, default=16)
    p.add_argument("--lengths", default="256,512,2048,8192,16384", help="context lengths (default 256,512,2048,8192,16384)")
    p.add_argument("--window", type=int, default=32, help="decode steps timed per repetition (default 32)")
    p.add_argument("--reps", type=int, default=3, help="timed repetitions, median reported (default 3)")
    p.add_argument("--quick", action="store_true", help="lengths 256,512,2048 and 2 repetitions")
    p.add_argument("-ngl", "--n-gpu-layers", type=int, default=0)
    p.add_argument("-fa", "--flash-attn", action="store_true")
    p.add_argument("-t", "--threads", type=int, default=None)
    p.add_argument("-o", "--out", default="bench-out", help="output folder (default bench-out)")
    p.add_argument("--force", action="store_true", help="remeasure records already in results.json")
    p.set_defaults(func=run)


def _key(r: dict) -> tuple:
    return (r["suite"], r["policy"], r["budget"], r["length"])


def run(args) -> int:
    from raas_local.bench.report import speed_table, speed_targets
    from raas_local.bench.speed import measure
    from raas_local.policies import CachePolicy

    suites = [s.strip() for s in args.suite.split(",") if s.strip()]
    for s in suites:
        if s not in SUITES:
            raise InputError(f"unknown suite {s!r}; choose from {', '.join(SUITES)}")
    try:
        lengths = [int(x) for x in ("256,512,2048" if args.quick else args.lengths).split(",")]
    except ValueError:
        raise InputError(f"--lengths must be comma-separated integers, got {args.lengths!r}") from None
    reps = 2 if args.quick else args.reps
    policies = [CachePolicy(kind=k.strip(), budget=args.budget, page_size=args.page_size)
                for k in args.policies.split(",") if k.strip()]

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    records = json.loads(results_path.read_text()) if results_path.exists() and not args.force else []
    done = {_key(r) for r in records}
    engine_kw = dict(n_gpu_layers=args.n_gpu_layers, flash_attn=args.flash_attn, n_threads=args.threads)

    todo = [(n, p) for n in lengths for p in policies
            if ("speed", p.kind, p.budget if p.evicts else None, n) not in done]
    for i, (n, pol) in enumerate(todo, 1):
        print(f"[{i}/{len(todo)}] speed {pol.kind} length {n} ...", file=sys.stderr, flush=True)
        rec = vars(measure(args.model, pol, n, args.window, reps, **engine_kw))
        records = [r for r in records if _key(r) != _key(rec)] + [rec]
        tmp = results_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(records, indent=1) + "\n")
        os.replace(tmp, results_path)  # every record is kept even if the run is stopped
        print(f"    {rec['tok_per_s']:.1f} tok/s, {rec['kv_cells']} KV cells, {rec['evictions']} evictions", file=sys.stderr)

    speed = [r for r in records if r["suite"] == "speed" and r["length"] in lengths]
    table = speed_table(speed)
    targets = speed_targets(speed, args.budget)
    (out / "speed.md").write_text(table + "\n\n" + "\n".join(f"- {t}" for t in targets) + "\n")
    print(table)
    print("\n".join(targets))
    return 0
