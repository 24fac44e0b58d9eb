"""Decode speed inside the chat TUI vs the engine alone.

    python -m raas_local.bench.tui_speed [MODEL] --budget 128 -n 300 --repeat 3

Both sides run the same prompt, greedy, with ignore_eos, for N tokens, on one
engine (loaded once, reset before each run), alternating engine / TUI so drift
in machine load hits both alike. The engine alone consumes ``generate`` in the
main thread as `raas-local run -p` does; the TUI runs headless (``run_test``)
and generates in its worker thread while the UI renders the stream and the
cache panel. Speed is wall-clock from the first token to the last (what the
user waits for); the engine's own decode-time figure is printed beside it.
The target is a ratio >= 0.95.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys

from raas_local.argtypes import positive_int
from raas_local import flags
from raas_local.sampling import Sampling

DEFAULT_PROMPT = "Write a long story about a robot who learns to paint."


def sampling(n: int) -> Sampling:
    return Sampling(max_tokens=n, temperature=0.0, ignore_eos=True)


def engine_alone(engine, prompt: str, n: int) -> tuple[float, float, int]:
    from raas_local.engine import collect

    engine.reset()
    done = collect(engine.generate(prompt, sampling(n)))
    return done.tok_per_s_wall, done.stats.tok_per_s, done.stats.cache.evictions


async def _tui_once(engine, prompt: str, n: int, size=(120, 40)):
    from raas_local.tui.app import ChatApp

    engine.reset()
    app = ChatApp(engine=engine, options=sampling(n))
    async with app.run_test(size=size) as pilot:
        while app.phase != "idle":
            await pilot.pause(0.02)
        await app.ask(prompt)
        # plain sleeps: pilot.pause() makes the UI thread work to wait (~8% of a core)
        while app.phase != "idle" or not app.replies:
            await asyncio.sleep(0.2)
        r = app.replies[-1]
    return r.tok_per_s_wall, r.tok_per_s_engine, r.evictions, app.throttle.text_interval


def tui(engine, prompt: str, n: int) -> tuple[float, float, int, float]:
    return asyncio.run(_tui_once(engine, prompt, n))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m raas_local.bench.tui_speed", description=__doc__.split("\n\n")[0])
    flags.add_model_flags(ap)
    flags.add_policy_flags(ap)
    ap.add_argument("-n", "--max-tokens", type=positive_int, default=300)
    ap.add_argument("-p", "--prompt", default=DEFAULT_PROMPT)
    ap.add_argument("--repeat", type=positive_int, default=3)
    ap.set_defaults(budget=128)
    args = ap.parse_args(argv)
    engine = flags.engine_from_args(args)
    try:
        engine_alone(engine, args.prompt, min(32, args.max_tokens))  # warm-up: caches, pages, first graph
        eng_runs, tui_runs = [], []
        for i in range(args.repeat):
            eng_runs.append(engine_alone(engine, args.prompt, args.max_tokens))
            tui_runs.append(tui(engine, args.prompt, args.max_tokens))
            print(f"run {i + 1}: engine {eng_runs[-1][0]:.1f} tok/s, TUI {tui_runs[-1][0]:.1f} tok/s "
                  f"(text updates every {tui_runs[-1][3]:.2f}s at the end)", file=sys.stderr)
        e_wall = statistics.median(r[0] for r in eng_runs)
        t_wall = statistics.median(r[0] for r in tui_runs)
        e_eng = statistics.median(r[1] for r in eng_runs)
        t_eng = statistics.median(r[1] for r in tui_runs)
        print(f"model {engine.model_path.name} | policy {engine.policy.kind} budget {engine.policy.budget} | "
              f"{args.max_tokens} tokens greedy, ignore_eos | {engine.n_threads} threads | median of {args.repeat}")
        print(f"engine alone : {e_wall:7.1f} tok/s wall  ({e_eng:.1f} engine-timed)  evictions {eng_runs[-1][2]}")
        print(f"inside TUI   : {t_wall:7.1f} tok/s wall  ({t_eng:.1f} engine-timed)  evictions {tui_runs[-1][2]}")
        print(f"ratio TUI/engine: {t_wall / e_wall:.3f}  (target >= 0.95)")
    finally:
        engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
