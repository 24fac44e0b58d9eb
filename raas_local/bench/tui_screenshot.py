"""Save an SVG of the chat mid-chain (docs/tui.svg), from a real run.

    python -m raas_local.bench.tui_screenshot [-o docs/tui.svg] [MODEL] [--budget 128] [-n 400] [--at 300]

Runs the chat headless on the embedded model at budget 128, asks one
question (greedy, ignore_eos so the chain runs long enough to evict pages),
saves the screen once ``--at`` tokens have streamed, then stops the reply.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from raas_local.argtypes import positive_int
from raas_local import flags
from raas_local.sampling import Sampling

QUESTION = "A train leaves at 3:40 pm and the trip takes 2 h 35 min. When does it arrive? Explain step by step."


async def _shoot(engine, label: str | None, out: Path, n: int, at: int, size: tuple[int, int]) -> None:
    from raas_local.tui.app import ChatApp

    app = ChatApp(engine=engine, options=Sampling(max_tokens=n, temperature=0.0, ignore_eos=True), model_label=label)
    async with app.run_test(size=size) as pilot:
        while app.phase != "idle":
            await pilot.pause(0.05)
        await app.ask(QUESTION)
        while app.panel.state.generated < at and app.phase == "generating":
            await pilot.pause(0.02)
        await pilot.pause(0.1)  # let the last chunk render
        out.parent.mkdir(parents=True, exist_ok=True)
        app.save_screenshot(filename=out.name, path=str(out.parent))
        s = app.panel.state
        print(f"saved {out} at {s.generated} tokens: used {s.used}/{s.budget}, pages {len(s.pages)}, evictions {s.evictions}")
        await pilot.press("escape")
        while app.phase != "idle":
            await pilot.pause(0.05)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m raas_local.bench.tui_screenshot", description=__doc__.split("\n\n")[0])
    flags.add_model_flags(ap)
    flags.add_policy_flags(ap)
    ap.add_argument("-o", "--out", type=Path, default=Path("docs/tui.svg"))
    ap.add_argument("-n", "--max-tokens", type=positive_int, default=400)
    ap.add_argument("--at", type=positive_int, default=300, help="tokens streamed when the screenshot is taken")
    ap.add_argument("--size", default="120x40", help="terminal COLSxROWS")
    ap.set_defaults(budget=128)
    args = ap.parse_args(argv)
    cols, rows = (int(x) for x in args.size.lower().split("x"))
    engine = flags.engine_from_args(args)
    try:
        label = None if flags.model_arg(args) else "SmolLM2-135M-Instruct (embedded)"
        asyncio.run(_shoot(engine, label, args.out, args.max_tokens, args.at, (cols, rows)))
    finally:
        engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
